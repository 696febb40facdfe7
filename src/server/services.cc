#include "chainfire/server/services.h"

#include <deque>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "chainfire/auth/errors.h"
#include "chainfire/mvcc/txn_validation.h"
#include "chainfire/transport/peer_transport.h"
#include "grpcpp/grpcpp.h"

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

namespace {
absl::Status ErrEmptyKey() { return absl::InvalidArgumentError("etcdserver: key is not provided"); }
absl::Status ErrTooLarge() {
  return absl::InvalidArgumentError("etcdserver: request is too large");
}

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* ctx, const absl::Status& s) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpc(s));
  return reactor;
}

// Runs `fn(caller)` with the call's caller: at once when it is known (the common case, and
// always when no token is sent), after a read when its token's entry is not applied here yet;
// answers the call with the error when the token is invalid.
template <typename Fn>
void WithCaller(AuthGuard* guard, grpc::CallbackServerContext* ctx,
                grpc::ServerUnaryReactor* reactor, Fn fn) {
  absl::StatusOr<auth::Caller> now = guard->CallerNow(ctx);
  if (now.ok()) {
    fn(*now);
    return;
  }
  guard->Resolve(
      ctx, [guard, ctx, reactor, fn = std::move(fn)](absl::StatusOr<auth::Caller> caller) mutable {
        if (caller.ok()) {
          fn(*caller);
          return;
        }
        guard->LogRefused(ctx, auth::Caller{}, "a request", caller.status());
        reactor->Finish(ToGrpc(caller.status()));
      });
}

bool IsAuthRefusal(const absl::Status& s) {
  return s.code() == absl::StatusCode::kPermissionDenied ||
         s.message() == "etcdserver: user name is empty" ||
         s.message() == "etcdserver: revision of auth store is old";
}

// Proposes `r` stamped with the caller; when it is applied, answers with the part of the
// result `field` names and the response header filled in (or with the request's error).
template <typename Response>
grpc::ServerUnaryReactor* ProposeAndReply(NodeHost* host, AuthGuard* guard,
                                          grpc::CallbackServerContext* ctx, internal::Request r,
                                          Response* resp, Response WriteResult::*field) {
  auto* reactor = ctx->DefaultReactor();
  WithCaller(guard, ctx, reactor,
             [host, guard, ctx, resp, reactor, field,
              r = std::move(r)](const auth::Caller& caller) mutable {
               AuthGuard::Stamp(caller, &r);
               host->Propose(std::move(r),
                             [host, guard, ctx, caller, resp, reactor, field](WriteResult result) {
                               if (result.status.ok()) {
                                 *resp = std::move(result.*field);
                                 host->FillHeader(resp->mutable_header());
                               } else if (IsAuthRefusal(result.status)) {
                                 guard->LogRefused(ctx, caller, "a write", result.status);
                               }
                               reactor->Finish(ToGrpc(result.status));
                             });
             });
  return reactor;
}
}  // namespace

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
  auto* reactor = ctx->DefaultReactor();
  NodeHost* host = host_;
  AuthGuard* guard = guard_;
  WithCaller(guard_, ctx, reactor, [=](const auth::Caller& caller) {
    auto serve = [host, guard, ctx, caller, req, resp, reactor](absl::Status s) {
      // etcd's doSerialize: the permission as of now, then the read, then a check that the
      // auth store did not change under it.
      std::shared_ptr<const auth::AuthView> view;
      if (s.ok() && host->auth().enabled()) {
        view = host->auth().view();
        s = view->CheckKeys(caller, req->key(), req->range_end(), false);
        if (!s.ok()) guard->LogRefused(ctx, caller, "a range", s);
      }
      if (s.ok()) s = host->kv().Range(*req, resp);
      if (s.ok() && view && caller.revision != 0 &&
          host->auth().view()->revision() != caller.revision) {
        s = auth::ErrAuthOldRevision();
      }
      if (s.ok()) host->FillHeader(resp->mutable_header());
      reactor->Finish(ToGrpc(s));
    };
    if (req->serializable()) {
      serve(absl::OkStatus());
    } else {
      host->LinearizableRead(std::move(serve), req->range_end().empty()
                                                   ? NodeHost::ReadWork::kPoint
                                                   : NodeHost::ReadWork::kScan);
    }
  });
  return reactor;
}

grpc::ServerUnaryReactor* KvService::Put(grpc::CallbackServerContext* ctx,
                                         const etcdserverpb::PutRequest* req,
                                         etcdserverpb::PutResponse* resp) {
  if (req->key().empty()) return FinishNow(ctx, ErrEmptyKey());
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
    for (etcdserverpb::AlarmMember& a : host_->kv().Alarms()) *resp->add_alarms() = std::move(a);
    host_->FillHeader(resp->mutable_header());
    return FinishNow(ctx, absl::OkStatus());
  }
  // Activate and deactivate go through the log: alarms are cluster-wide state. etcdctl's
  // "alarm disarm" sends one DEACTIVATE per alarm it listed.
  internal::Request r;
  *r.mutable_alarm() = *req;
  return ProposeAndReply(host_, guard_, ctx, std::move(r), resp, &WriteResult::alarm);
}

grpc::ServerUnaryReactor* MaintenanceService::HashKV(grpc::CallbackServerContext* ctx,
                                                     const etcdserverpb::HashKVRequest* req,
                                                     etcdserverpb::HashKVResponse* resp) {
  if (absl::Status a = CheckAdmin(ctx); !a.ok()) return FinishNow(ctx, a);
  uint32_t hash = 0;
  int64_t at = 0;
  absl::Status s = host_->kv().HashKV(req->revision(), &hash, &at);
  if (s.ok()) {
    resp->set_hash(hash);
    resp->set_compact_revision(host_->kv().compact_revision());
    host_->FillHeader(resp->mutable_header());
    resp->mutable_header()->set_revision(at);
  }
  return FinishNow(ctx, s);
}

grpc::ServerUnaryReactor* MaintenanceService::Hash(grpc::CallbackServerContext* ctx,
                                                   const etcdserverpb::HashRequest*,
                                                   etcdserverpb::HashResponse* resp) {
  // etcd's Hash covers the whole backend and is meant for testing; ours is the logical hash of
  // the key-value state at the current revision.
  if (absl::Status a = CheckAdmin(ctx); !a.ok()) return FinishNow(ctx, a);
  uint32_t hash = 0;
  int64_t at = 0;
  absl::Status s = host_->kv().HashKV(0, &hash, &at);
  if (s.ok()) {
    resp->set_hash(hash);
    host_->FillHeader(resp->mutable_header());
  }
  return FinishNow(ctx, s);
}

grpc::ServerUnaryReactor* MaintenanceService::Defragment(grpc::CallbackServerContext* ctx,
                                                         const etcdserverpb::DefragmentRequest*,
                                                         etcdserverpb::DefragmentResponse* resp) {
  // RocksDB's equivalent of bbolt's defragmentation: a full compaction of every column, which
  // drops deleted and compacted-away versions from the files. Runs on its own thread.
  if (absl::Status a = CheckAdmin(ctx); !a.ok()) return FinishNow(ctx, a);
  auto* reactor = ctx->DefaultReactor();
  storage::Engine* engine = engine_;
  NodeHost* host = host_;
  helpers_.Submit([engine, host, resp, reactor] {
    absl::Status s = engine->CompactAll();
    if (s.ok()) host->FillHeader(resp->mutable_header());
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

namespace chainfire::server {
namespace {

constexpr size_t kMaxQueuedResponses = 256;

class WatchStream
    : public grpc::ServerBidiReactor<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>,
      public mvcc::WatchSink {
 public:
  WatchStream(NodeHost* host, size_t max_bytes, AuthGuard* guard, grpc::CallbackServerContext* ctx)
      : host_(host), max_bytes_(max_bytes), guard_(guard), ctx_(ctx) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The client closed its side: stop the watches; finish once the queue has drained.
      host_->watch_hub().RemoveAll(this);
      std::lock_guard<std::mutex> l(mu_);
      closing_ = true;
      MaybeFinishLocked();
      return;
    }
    Handle(request_);
    request_.Clear();
    StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> l(mu_);
    queue_.pop_front();
    writing_ = false;
    if (!ok) {
      closing_ = true;
      queue_.clear();
    }
    WriteNextLocked();
    MaybeFinishLocked();
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> l(mu_);
    closing_ = true;
    if (!writing_) queue_.clear();
    MaybeFinishLocked();
  }

  void OnDone() override {
    host_->watch_hub().RemoveAll(this);  // after this the hub never calls us again
    delete this;
  }

  // mvcc::WatchSink (called with the hub's lock held).
  bool Deliver(int64_t id, std::vector<mvccpb::Event> events, int64_t revision) override {
    std::lock_guard<std::mutex> l(mu_);
    if (closing_) return true;  // dropping is fine: the stream is going away
    if (queue_.size() >= kMaxQueuedResponses) return false;
    if (!fragmenting_.count(id)) {
      etcdserverpb::WatchResponse r;
      Header(&r, revision);
      r.set_watch_id(id);
      for (mvccpb::Event& e : events) *r.add_events() = std::move(e);
      EnqueueLocked(std::move(r));
      return true;
    }
    // fragment: split a large batch into responses of at most max_bytes_, all but the last
    // flagged `fragment` (clients reassemble them).
    etcdserverpb::WatchResponse r;
    Header(&r, revision);
    r.set_watch_id(id);
    size_t size = 0;
    for (mvccpb::Event& e : events) {
      const size_t n = e.ByteSizeLong();
      if (r.events_size() > 0 && size + n > max_bytes_) {
        r.set_fragment(true);
        EnqueueLocked(r);
        r.clear_events();
        r.set_fragment(false);
        size = 0;
      }
      size += n;
      *r.add_events() = std::move(e);
    }
    EnqueueLocked(std::move(r));
    return true;
  }

  void Compacted(int64_t id, int64_t compact_revision) override {
    std::lock_guard<std::mutex> l(mu_);
    etcdserverpb::WatchResponse r;
    Header(&r, host_->kv().revision());
    r.set_watch_id(id);
    r.set_canceled(true);
    r.set_compact_revision(compact_revision);
    r.set_cancel_reason("etcdserver: mvcc: required revision has been compacted");
    EnqueueLocked(std::move(r));
  }

  bool HasRoom() override {
    std::lock_guard<std::mutex> l(mu_);
    return !closing_ && queue_.size() < kMaxQueuedResponses / 2;
  }

 private:
  void Handle(const etcdserverpb::WatchRequest& req) {
    if (req.has_create_request()) {
      const etcdserverpb::WatchCreateRequest& c = req.create_request();
      int64_t id;
      // The watch reports every change after the revision its `created` response carries.
      const int64_t created_rev = host_->kv().revision();
      {
        std::lock_guard<std::mutex> l(mu_);
        id = c.watch_id() != 0 ? c.watch_id() : next_id_++;
        etcdserverpb::WatchResponse r;
        Header(&r, created_rev);
        r.set_watch_id(id);
        r.set_created(true);
        if (ids_.count(id)) {
          r.set_canceled(true);
          r.set_cancel_reason("mvcc: duplicate watch ID provided on the WatchStream");
          EnqueueLocked(std::move(r));
          return;
        }
        if (absl::Status denied = WatchPermission(c); !denied.ok()) {
          // etcd 3.4: created and canceled at once, the reason in the response.
          r.set_watch_id(-1);
          r.set_canceled(true);
          r.set_cancel_reason(absl::StrCat("rpc error: code = ", GrpcCodeName(denied.code()),
                                           " desc = ", denied.message()));
          EnqueueLocked(std::move(r));
          return;
        }
        ids_.insert(id);
        if (c.fragment()) fragmenting_.insert(id);
        EnqueueLocked(std::move(r));  // `created` precedes every event of this watch
      }
      mvcc::WatchSpec spec;
      spec.key = c.key();
      spec.range_end = c.range_end();
      spec.start_revision = c.start_revision() > 0 ? c.start_revision() : created_rev + 1;
      spec.prev_kv = c.prev_kv();
      spec.progress_notify = c.progress_notify();
      for (int f : c.filters()) {
        if (f == etcdserverpb::WatchCreateRequest::NOPUT) spec.no_put = true;
        if (f == etcdserverpb::WatchCreateRequest::NODELETE) spec.no_delete = true;
      }
      const int64_t compacted = host_->kv().compact_revision();
      if (spec.start_revision > 0 && spec.start_revision < compacted) {
        Compacted(id, compacted);
        return;
      }
      host_->watch_hub().Add(this, id, spec);
    } else if (req.has_cancel_request()) {
      const int64_t id = req.cancel_request().watch_id();
      host_->watch_hub().Remove(this, id);
      std::lock_guard<std::mutex> l(mu_);
      ids_.erase(id);
      fragmenting_.erase(id);
      etcdserverpb::WatchResponse r;
      Header(&r, host_->kv().revision());
      r.set_watch_id(id);
      r.set_canceled(true);
      EnqueueLocked(std::move(r));
    } else if (req.has_progress_request()) {
      int64_t rev = 0;
      if (host_->watch_hub().Synced(this, &rev)) {
        std::lock_guard<std::mutex> l(mu_);
        etcdserverpb::WatchResponse r;
        Header(&r, rev);
        r.set_watch_id(-1);  // etcd's id for progress notifications
        EnqueueLocked(std::move(r));
      }
    }
  }

  // READ on the watched range, as etcd checks a watch's creation.
  absl::Status WatchPermission(const etcdserverpb::WatchCreateRequest& c) {
    if (!host_->auth().enabled() && ctx_->client_metadata().count("token") == 0) {
      return absl::OkStatus();
    }
    absl::StatusOr<auth::Caller> caller = guard_->CallerNow(ctx_);
    absl::Status s = caller.ok()
                         ? host_->auth().view()->CheckKeys(*caller, c.key(), c.range_end(), false)
                         : caller.status();
    if (!s.ok()) guard_->LogRefused(ctx_, caller.ok() ? *caller : auth::Caller{}, "a watch", s);
    return s;
  }

  // Go's names of the gRPC codes, as etcd's cancel reasons print them.
  static const char* GrpcCodeName(absl::StatusCode code) {
    switch (code) {
      case absl::StatusCode::kPermissionDenied:
        return "PermissionDenied";
      case absl::StatusCode::kUnauthenticated:
        return "Unauthenticated";
      case absl::StatusCode::kInvalidArgument:
        return "InvalidArgument";
      default:
        return "Unknown";
    }
  }

  void Header(etcdserverpb::WatchResponse* r, int64_t revision) {
    host_->FillHeader(r->mutable_header());
    r->mutable_header()->set_revision(revision);
  }

  void EnqueueLocked(etcdserverpb::WatchResponse r) {
    if (closing_) return;
    queue_.push_back(std::move(r));
    WriteNextLocked();
  }

  void WriteNextLocked() {
    if (writing_ || queue_.empty() || closing_) return;
    writing_ = true;
    StartWrite(&queue_.front());
  }

  void MaybeFinishLocked() {
    if (closing_ && !writing_ && !finished_) {
      finished_ = true;
      Finish(grpc::Status::OK);
    }
  }

  NodeHost* host_;
  const size_t max_bytes_;
  AuthGuard* guard_;
  grpc::CallbackServerContext* ctx_;  // the stream's; valid until OnDone
  etcdserverpb::WatchRequest request_;
  std::mutex mu_;
  std::deque<etcdserverpb::WatchResponse> queue_;  // guarded by mu_; front is being written
  std::set<int64_t> ids_;                          // guarded by mu_
  std::set<int64_t> fragmenting_;                  // guarded by mu_: watches with `fragment`
  int64_t next_id_ = 0;                            // guarded by mu_
  bool writing_ = false;                           // guarded by mu_
  bool closing_ = false;                           // guarded by mu_
  bool finished_ = false;                          // guarded by mu_
};

}  // namespace

grpc::ServerBidiReactor<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>*
WatchService::Watch(grpc::CallbackServerContext* ctx) {
  return new WatchStream(host_, max_bytes_, guard_, ctx);
}

}  // namespace chainfire::server

namespace chainfire::server {
namespace {

constexpr int64_t kMaxLeaseTtl = 9000000000;

class KeepAliveStream : public grpc::ServerBidiReactor<etcdserverpb::LeaseKeepAliveRequest,
                                                       etcdserverpb::LeaseKeepAliveResponse> {
 public:
  explicit KeepAliveStream(LeaseService* service) : service_(service) { StartRead(&request_); }
  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    // One request at a time: the next read starts once this answer is written.
    service_->KeepAlive(request_.id(),
                        [this](absl::StatusOr<etcdserverpb::LeaseKeepAliveResponse> r) {
                          if (!r.ok()) {
                            Finish(ToGrpc(r.status()));
                            return;
                          }
                          response_ = std::move(*r);
                          StartWrite(&response_);
                        });
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    StartRead(&request_);
  }
  void OnDone() override { delete this; }

 private:
  LeaseService* service_;
  etcdserverpb::LeaseKeepAliveRequest request_;
  etcdserverpb::LeaseKeepAliveResponse response_;
};

}  // namespace

void LeaseService::KeepAlive(
    int64_t id, std::function<void(absl::StatusOr<etcdserverpb::LeaseKeepAliveResponse>)> done) {
  if (host_->is_leader()) {
    done(host_->KeepAliveLocal(id));
    return;
  }
  std::shared_ptr<grpc::Channel> leader = host_->LeaderChannel();
  if (!leader) {
    done(ErrNoLeader());
    return;
  }
  struct Call {
    grpc::ClientContext ctx;
    etcdserverpb::LeaseKeepAliveRequest req;
    etcdserverpb::LeaseKeepAliveResponse resp;
    std::unique_ptr<peer::Peer::Stub> stub;
  };
  auto* call = new Call;
  call->req.set_id(id);
  call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  call->stub = peer::Peer::NewStub(leader);
  call->stub->async()->LeaseKeepAlive(&call->ctx, &call->req, &call->resp,
                                      [call, done = std::move(done)](grpc::Status s) {
                                        if (s.ok()) {
                                          done(std::move(call->resp));
                                        } else {
                                          done(ErrLeaderChanged());
                                        }
                                        delete call;
                                      });
}

grpc::ServerBidiReactor<etcdserverpb::LeaseKeepAliveRequest, etcdserverpb::LeaseKeepAliveResponse>*
LeaseService::LeaseKeepAlive(grpc::CallbackServerContext*) {
  return new KeepAliveStream(this);
}

grpc::ServerUnaryReactor* LeaseService::LeaseGrant(grpc::CallbackServerContext* ctx,
                                                   const etcdserverpb::LeaseGrantRequest* req,
                                                   etcdserverpb::LeaseGrantResponse* resp) {
  if (req->ttl() > kMaxLeaseTtl) {
    return FinishNow(ctx, absl::OutOfRangeError("etcdserver: too large lease TTL"));
  }
  if (absl::Status s = quota_->Check(req->ByteSizeLong()); !s.ok()) return FinishNow(ctx, s);
  internal::Request r;
  int64_t id = req->id();
  if (id == 0) {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    while (id <= 0) id = static_cast<int64_t>(rng() >> 1);
  }
  r.mutable_lease_grant()->set_id(id);
  r.mutable_lease_grant()->set_ttl(std::max(req->ttl(), host_->min_lease_ttl()));
  return ProposeAndReply(host_, guard_, ctx, std::move(r), resp, &WriteResult::lease_grant);
}

grpc::ServerUnaryReactor* LeaseService::LeaseRevoke(grpc::CallbackServerContext* ctx,
                                                    const etcdserverpb::LeaseRevokeRequest* req,
                                                    etcdserverpb::LeaseRevokeResponse* resp) {
  internal::Request r;
  r.mutable_lease_revoke()->set_id(req->id());
  return ProposeAndReply(host_, guard_, ctx, std::move(r), resp, &WriteResult::lease_revoke);
}

grpc::ServerUnaryReactor* LeaseService::LeaseTimeToLive(
    grpc::CallbackServerContext* ctx, const etcdserverpb::LeaseTimeToLiveRequest* req,
    etcdserverpb::LeaseTimeToLiveResponse* resp) {
  if (host_->is_leader()) {
    *resp = host_->TimeToLiveLocal(*req);
    return FinishNow(ctx, absl::OkStatus());
  }
  std::shared_ptr<grpc::Channel> leader = host_->LeaderChannel();
  if (!leader) return FinishNow(ctx, ErrNoLeader());
  auto* reactor = ctx->DefaultReactor();
  struct Call {
    grpc::ClientContext ctx;
    std::unique_ptr<peer::Peer::Stub> stub;
  };
  auto* call = new Call;
  call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  call->stub = peer::Peer::NewStub(leader);
  call->stub->async()->LeaseTimeToLive(&call->ctx, req, resp, [call, reactor](grpc::Status s) {
    reactor->Finish(s.ok() ? grpc::Status::OK : ToGrpc(ErrLeaderChanged()));
    delete call;
  });
  return reactor;
}

grpc::ServerUnaryReactor* LeaseService::LeaseLeases(grpc::CallbackServerContext* ctx,
                                                    const etcdserverpb::LeaseLeasesRequest*,
                                                    etcdserverpb::LeaseLeasesResponse* resp) {
  for (const auto& [id, ttl] : host_->kv().Leases()) resp->add_leases()->set_id(id);
  host_->FillHeader(resp->mutable_header());
  return FinishNow(ctx, absl::OkStatus());
}

}  // namespace chainfire::server
