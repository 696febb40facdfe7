#include "chainfire/server/services.h"

#include "absl/strings/str_cat.h"
#include "chainfire/auth/errors.h"
#include "chainfire/mvcc/txn_validation.h"
#include "chainfire/transport/peer_transport.h"
#include "grpcpp/grpcpp.h"
#include "service_helpers.h"

namespace chainfire::server {

absl::Status ErrMembershipFixed() {
  return absl::FailedPreconditionError(
      "chainfire: membership is fixed at boot and cannot be changed on a running cluster; to "
      "change it, take a backup (chainfire-backup save), start a new cluster with the new "
      "--initial-cluster, and restore the backup into it");
}

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

using internal_services::ErrEmptyKey;
using internal_services::ErrTooLarge;
using internal_services::FinishNow;
using internal_services::ProposeAndReply;
using internal_services::ServeLocalRead;
using internal_services::WithCaller;

absl::Status Quota::Check(int64_t request_bytes) {
  if (host_->kv().HasAlarm(etcdserverpb::NOSPACE)) return mvcc::ErrNoSpace();
  int64_t size;
  {
    std::lock_guard<std::mutex> l(mu_);
    const auto now = std::chrono::steady_clock::now();
    if (now - sampled_ > std::chrono::milliseconds(500)) {
      size_ = engine_->DiskSize();
      sampled_ = now;
    }
    size = size_;
    // Between samples, count what was accepted so a burst cannot run past the quota.
    if (size + request_bytes <= bytes_) {
      size_ += request_bytes;
      return absl::OkStatus();
    }
  }
  internal::Request r;
  r.mutable_alarm()->set_action(etcdserverpb::AlarmRequest::ACTIVATE);
  r.mutable_alarm()->set_memberid(host_->member_id());
  r.mutable_alarm()->set_alarm(etcdserverpb::NOSPACE);
  host_->Propose(std::move(r), [](WriteResult) {});
  return mvcc::ErrNoSpace();
}

namespace {
bool TxnPuts(const etcdserverpb::TxnRequest& t) {
  for (const auto* ops : {&t.success(), &t.failure()}) {
    for (const etcdserverpb::RequestOp& op : *ops) {
      if (op.has_request_put()) return true;
      if (op.has_request_txn() && TxnPuts(op.request_txn())) return true;
    }
  }
  return false;
}
}  // namespace

grpc::ServerUnaryReactor* KvService::Range(grpc::CallbackServerContext* ctx,
                                           const etcdserverpb::RangeRequest* req,
                                           etcdserverpb::RangeResponse* resp) {
  if (absl::Status s = mvcc::ValidateRange(*req); !s.ok()) return FinishNow(ctx, s);
  if (static_cast<int64_t>(req->ByteSizeLong()) > max_request_bytes_) {
    return FinishNow(ctx, ErrTooLarge());
  }
  NodeHost* host = host_;
  return ServeLocalRead(
      host_, guard_, ctx, !req->serializable(),
      req->range_end().empty() ? NodeHost::ReadWork::kPoint : NodeHost::ReadWork::kScan, "a range",
      resp->mutable_header(),
      [req](const auth::AuthView& view, const auth::Caller& caller) {
        return view.CheckKeys(caller, req->key(), req->range_end(), false);
      },
      [host, req, resp] { return host->kv().Range(*req, resp); });
}

grpc::ServerUnaryReactor* KvService::Put(grpc::CallbackServerContext* ctx,
                                         const etcdserverpb::PutRequest* req,
                                         etcdserverpb::PutResponse* resp) {
  if (absl::Status s = mvcc::ValidatePut(*req); !s.ok()) return FinishNow(ctx, s);
  if (static_cast<int64_t>(req->ByteSizeLong()) > max_request_bytes_) {
    return FinishNow(ctx, ErrTooLarge());
  }
  if (absl::Status s = quota_->Check(req->ByteSizeLong()); !s.ok()) return FinishNow(ctx, s);
  internal::Request r;
  *r.mutable_put() = *req;
  return ProposeAndReply(host_, guard_, ctx, std::move(r), resp, &WriteResult::put);
}

grpc::ServerUnaryReactor* KvService::DeleteRange(grpc::CallbackServerContext* ctx,
                                                 const etcdserverpb::DeleteRangeRequest* req,
                                                 etcdserverpb::DeleteRangeResponse* resp) {
  if (req->key().empty()) return FinishNow(ctx, ErrEmptyKey());
  if (static_cast<int64_t>(req->ByteSizeLong()) > max_request_bytes_) {
    return FinishNow(ctx, ErrTooLarge());
  }
  internal::Request r;
  *r.mutable_delete_range() = *req;
  return ProposeAndReply(host_, guard_, ctx, std::move(r), resp, &WriteResult::delete_range);
}

grpc::ServerUnaryReactor* KvService::Txn(grpc::CallbackServerContext* ctx,
                                         const etcdserverpb::TxnRequest* req,
                                         etcdserverpb::TxnResponse* resp) {
  if (static_cast<int64_t>(req->ByteSizeLong()) > max_request_bytes_) {
    return FinishNow(ctx, ErrTooLarge());
  }
  if (absl::Status s = mvcc::ValidateTxn(*req); !s.ok()) return FinishNow(ctx, s);
  if (mvcc::TxnIsReadOnly(*req)) {
    // As etcd: served from this member's state after a read index (none when every range in
    // it is serializable), never through the log.
    NodeHost* host = host_;
    return ServeLocalRead(
        host_, guard_, ctx, !mvcc::TxnIsSerializable(*req), NodeHost::ReadWork::kScan, "a txn",
        resp->mutable_header(),
        [req](const auth::AuthView& view, const auth::Caller& caller) {
          return view.CheckTxn(caller, *req);
        },
        [host, req, resp] { return host->kv().ReadTxn(*req, resp); });
  }
  if (TxnPuts(*req)) {
    if (absl::Status s = quota_->Check(req->ByteSizeLong()); !s.ok()) return FinishNow(ctx, s);
  }
  internal::Request r;
  *r.mutable_txn() = *req;
  return ProposeAndReply(host_, guard_, ctx, std::move(r), resp, &WriteResult::txn);
}

grpc::ServerUnaryReactor* KvService::Compact(grpc::CallbackServerContext* ctx,
                                             const etcdserverpb::CompactionRequest* req,
                                             etcdserverpb::CompactionResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  internal::Request r;
  *r.mutable_compaction() = *req;
  if (absl::StatusOr<auth::Caller> caller = guard_->CallerNow(ctx); caller.ok()) {
    AuthGuard::Stamp(*caller, &r);
  }
  NodeHost* host = host_;
  const bool physical = req->physical();
  const int64_t rev = req->revision();
  host_->Propose(std::move(r), [host, resp, reactor, physical, rev](WriteResult result) {
    if (!result.status.ok()) {
      reactor->Finish(ToGrpc(result.status));
      return;
    }
    *resp = std::move(result.compaction);
    host->FillHeader(resp->mutable_header());
    if (physical) {
      // Answer once the superseded versions are gone from this member.
      host->kv().WhenPhysicallyCompacted(rev, [reactor] { reactor->Finish(grpc::Status::OK); });
    } else {
      reactor->Finish(grpc::Status::OK);
    }
  });
  return reactor;
}

grpc::ServerUnaryReactor* ClusterService::MemberList(grpc::CallbackServerContext* ctx,
                                                     const etcdserverpb::MemberListRequest*,
                                                     etcdserverpb::MemberListResponse* resp) {
  for (etcdserverpb::Member& m : host_->Members()) *resp->add_members() = std::move(m);
  host_->FillHeader(resp->mutable_header());
  resp->mutable_header()->clear_revision();  // as etcd 3.4: its cluster header has none
  return FinishNow(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* ClusterService::MemberAdd(grpc::CallbackServerContext* ctx,
                                                    const etcdserverpb::MemberAddRequest*,
                                                    etcdserverpb::MemberAddResponse*) {
  return RefuseChange(ctx);
}
grpc::ServerUnaryReactor* ClusterService::MemberRemove(grpc::CallbackServerContext* ctx,
                                                       const etcdserverpb::MemberRemoveRequest*,
                                                       etcdserverpb::MemberRemoveResponse*) {
  return RefuseChange(ctx);
}
grpc::ServerUnaryReactor* ClusterService::MemberUpdate(grpc::CallbackServerContext* ctx,
                                                       const etcdserverpb::MemberUpdateRequest*,
                                                       etcdserverpb::MemberUpdateResponse*) {
  return RefuseChange(ctx);
}
grpc::ServerUnaryReactor* ClusterService::MemberPromote(grpc::CallbackServerContext* ctx,
                                                        const etcdserverpb::MemberPromoteRequest*,
                                                        etcdserverpb::MemberPromoteResponse*) {
  return RefuseChange(ctx);
}

grpc::ServerUnaryReactor* ClusterService::RefuseChange(grpc::CallbackServerContext* ctx) {
  absl::StatusOr<auth::Caller> caller = guard_->CallerNow(ctx);
  absl::Status s = caller.ok() ? host_->auth().view()->CheckAdmin(*caller) : caller.status();
  if (!s.ok()) {
    guard_->LogRefused(ctx, caller.ok() ? *caller : auth::Caller{}, "a member change", s);
    return FinishNow(ctx, s);
  }
  return FinishNow(ctx, ErrMembershipFixed());
}

absl::Status MaintenanceService::CheckAdmin(grpc::CallbackServerContext* ctx) {
  if (!host_->auth().enabled() && ctx->client_metadata().count("token") == 0) {
    return absl::OkStatus();
  }
  absl::StatusOr<auth::Caller> caller = guard_->CallerNow(ctx);
  absl::Status s = caller.ok() ? host_->auth().view()->CheckAdmin(*caller) : caller.status();
  if (s.ok()) return s;
  guard_->LogRefused(ctx, caller.ok() ? *caller : auth::Caller{}, "maintenance", s);
  // etcd 3.4's maintenance server returns the auth store's own error unconverted: gRPC code
  // Unknown and "auth: ..." (what etcdctl prints, so clients see the same text).
  std::string text(s.message());
  if (text == "etcdserver: user name not found") text = "etcdserver: user not found";
  if (text.rfind("etcdserver: ", 0) == 0) text = "auth: " + text.substr(12);
  return absl::UnknownError(text);
}

grpc::ServerUnaryReactor* MaintenanceService::Status(grpc::CallbackServerContext* ctx,
                                                     const etcdserverpb::StatusRequest*,
                                                     etcdserverpb::StatusResponse* resp) {
  resp->set_version(kEtcdApiVersion);
  const int64_t size = engine_->DiskSize();
  resp->set_dbsize(size > 0 ? size : 1);
  resp->set_dbsizeinuse(size > 0 ? size : 1);
  resp->set_leader(host_->leader());
  resp->set_raftindex(host_->commit_index());
  resp->set_raftterm(host_->term());
  resp->set_raftappliedindex(host_->applied_index());
  for (const etcdserverpb::AlarmMember& a : host_->kv().Alarms()) {
    resp->add_errors(absl::StrCat("memberID:", a.memberid(),
                                  " alarm:", etcdserverpb::AlarmType_Name(a.alarm()), " "));
  }
  host_->FillHeader(resp->mutable_header());
  return FinishNow(ctx, absl::OkStatus());
}

}  // namespace chainfire::server

namespace chainfire::server {

grpc::ServerUnaryReactor* MaintenanceService::Alarm(grpc::CallbackServerContext* ctx,
                                                    const etcdserverpb::AlarmRequest* req,
                                                    etcdserverpb::AlarmResponse* resp) {
  if (req->action() == etcdserverpb::AlarmRequest::GET) {
    // etcd puts every Alarm call through the log, whose caller must resolve: a bad token fails.
    if (absl::StatusOr<auth::Caller> c = guard_->CallerNow(ctx); !c.ok()) {
      return FinishNow(ctx, c.status());
    }
    // As etcd 3.4: the answer has no header (its alarms come straight from the applier).
    for (etcdserverpb::AlarmMember& a : host_->kv().Alarms()) *resp->add_alarms() = std::move(a);
    return FinishNow(ctx, absl::OkStatus());
  }
  // Activate and deactivate go through the log: alarms are cluster-wide state. etcdctl's
  // "alarm disarm" sends one DEACTIVATE per alarm it listed.
  internal::Request r;
  *r.mutable_alarm() = *req;
  return ProposeAndReply(host_, guard_, ctx, std::move(r), resp, &WriteResult::alarm);
}

grpc::ServerUnaryReactor* MaintenanceService::HashOnHelper(
    grpc::CallbackServerContext* ctx, int64_t revision,
    std::function<void(uint32_t hash, int64_t at)> fill) {
  if (absl::Status a = CheckAdmin(ctx); !a.ok()) return FinishNow(ctx, a);
  // A hash reads every key: on a helper thread, not on gRPC's callback thread.
  auto* reactor = ctx->DefaultReactor();
  NodeHost* host = host_;
  helpers_.Submit([host, reactor, revision, fill = std::move(fill)] {
    uint32_t hash = 0;
    int64_t at = 0;
    absl::Status s = host->kv().HashKV(revision, &hash, &at);
    if (s.ok()) fill(hash, at);
    reactor->Finish(ToGrpc(s));
  });
  return reactor;
}

grpc::ServerUnaryReactor* MaintenanceService::HashKV(grpc::CallbackServerContext* ctx,
                                                     const etcdserverpb::HashKVRequest* req,
                                                     etcdserverpb::HashKVResponse* resp) {
  NodeHost* host = host_;
  return HashOnHelper(ctx, req->revision(), [host, resp](uint32_t hash, int64_t at) {
    resp->set_hash(hash);
    resp->set_compact_revision(host->kv().compact_revision());
    host->FillHeader(resp->mutable_header());
    resp->mutable_header()->set_revision(at);
  });
}

grpc::ServerUnaryReactor* MaintenanceService::Hash(grpc::CallbackServerContext* ctx,
                                                   const etcdserverpb::HashRequest*,
                                                   etcdserverpb::HashResponse* resp) {
  // etcd's Hash covers the whole backend and is meant for testing; ours is the logical hash of
  // the key-value state at the current revision.
  NodeHost* host = host_;
  return HashOnHelper(ctx, 0, [host, resp](uint32_t hash, int64_t) {
    resp->set_hash(hash);
    host->FillHeader(resp->mutable_header());
  });
}

grpc::ServerUnaryReactor* MaintenanceService::Defragment(grpc::CallbackServerContext* ctx,
                                                         const etcdserverpb::DefragmentRequest*,
                                                         etcdserverpb::DefragmentResponse* resp) {
  // RocksDB's equivalent of bbolt's defragmentation: a full compaction of every column, which
  // drops deleted and compacted-away versions from the files. Runs on its own thread.
  if (absl::Status a = CheckAdmin(ctx); !a.ok()) return FinishNow(ctx, a);
  auto* reactor = ctx->DefaultReactor();
  storage::Engine* engine = engine_;
  helpers_.Submit([engine, reactor] {
    absl::Status s = engine->CompactAll();  // as etcd 3.4: the answer has no header
    reactor->Finish(ToGrpc(s));
  });
  return reactor;
}

grpc::ServerUnaryReactor* MaintenanceService::MoveLeader(grpc::CallbackServerContext* ctx,
                                                         const etcdserverpb::MoveLeaderRequest* req,
                                                         etcdserverpb::MoveLeaderResponse* resp) {
  if (host_->leader() != host_->member_id()) {
    return FinishNow(ctx, absl::FailedPreconditionError("etcdserver: not leader"));
  }
  bool known = false;
  for (const etcdserverpb::Member& m : host_->Members()) known |= m.id() == req->targetid();
  if (!known) {
    return FinishNow(ctx, absl::FailedPreconditionError("etcdserver: bad leader transferee"));
  }
  host_->TransferLeadership(req->targetid());
  // Wait (bounded) on a helper thread for the transfer to show, then answer.
  auto* reactor = ctx->DefaultReactor();
  NodeHost* host = host_;
  const uint64_t target = req->targetid();
  helpers_.Submit([host, resp, reactor, target] {
    if (host->WaitForLeader([target](uint64_t lead) { return lead == target; },
                            std::chrono::seconds(5))) {
      host->FillHeader(resp->mutable_header());
      reactor->Finish(grpc::Status::OK);
    } else {
      reactor->Finish(ToGrpc(
          absl::UnavailableError("etcdserver: request timed out, leader transfer took too long")));
    }
  });
  return reactor;
}

}  // namespace chainfire::server
