#include "chainfire/server/services.h"

#include "absl/strings/str_cat.h"
#include "chainfire/mvcc/txn_validation.h"

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
}  // namespace

grpc::ServerUnaryReactor* KvService::Range(grpc::CallbackServerContext* ctx,
                                           const etcdserverpb::RangeRequest* req,
                                           etcdserverpb::RangeResponse* resp) {
  if (req->key().empty()) return FinishNow(ctx, ErrEmptyKey());
  if (static_cast<int64_t>(req->ByteSizeLong()) > max_request_bytes_) {
    return FinishNow(ctx, ErrTooLarge());
  }
  auto* reactor = ctx->DefaultReactor();
  NodeHost* host = host_;
  auto serve = [host, req, resp, reactor](absl::Status s) {
    if (s.ok()) s = host->kv().Range(*req, resp);
    if (s.ok()) host->FillHeader(resp->mutable_header());
    reactor->Finish(ToGrpc(s));
  };
  if (req->serializable()) {
    serve(absl::OkStatus());
  } else {
    host_->LinearizableRead(std::move(serve));
  }
  return reactor;
}

grpc::ServerUnaryReactor* KvService::Put(grpc::CallbackServerContext* ctx,
                                         const etcdserverpb::PutRequest* req,
                                         etcdserverpb::PutResponse* resp) {
  if (req->key().empty()) return FinishNow(ctx, ErrEmptyKey());
  if (static_cast<int64_t>(req->ByteSizeLong()) > max_request_bytes_) {
    return FinishNow(ctx, ErrTooLarge());
  }
  auto* reactor = ctx->DefaultReactor();
  internal::Request r;
  *r.mutable_put() = *req;
  NodeHost* host = host_;
  host_->Propose(std::move(r), [host, resp, reactor](WriteResult result) {
    if (result.status.ok()) {
      *resp = std::move(result.put);
      host->FillHeader(resp->mutable_header());
    }
    reactor->Finish(ToGrpc(result.status));
  });
  return reactor;
}

grpc::ServerUnaryReactor* KvService::DeleteRange(grpc::CallbackServerContext* ctx,
                                                 const etcdserverpb::DeleteRangeRequest* req,
                                                 etcdserverpb::DeleteRangeResponse* resp) {
  if (req->key().empty()) return FinishNow(ctx, ErrEmptyKey());
  if (static_cast<int64_t>(req->ByteSizeLong()) > max_request_bytes_) {
    return FinishNow(ctx, ErrTooLarge());
  }
  auto* reactor = ctx->DefaultReactor();
  internal::Request r;
  *r.mutable_delete_range() = *req;
  NodeHost* host = host_;
  host_->Propose(std::move(r), [host, resp, reactor](WriteResult result) {
    if (result.status.ok()) {
      *resp = std::move(result.delete_range);
      host->FillHeader(resp->mutable_header());
    }
    reactor->Finish(ToGrpc(result.status));
  });
  return reactor;
}

grpc::ServerUnaryReactor* KvService::Txn(grpc::CallbackServerContext* ctx,
                                         const etcdserverpb::TxnRequest* req,
                                         etcdserverpb::TxnResponse* resp) {
  if (static_cast<int64_t>(req->ByteSizeLong()) > max_request_bytes_) {
    return FinishNow(ctx, ErrTooLarge());
  }
  if (absl::Status s = mvcc::ValidateTxn(*req); !s.ok()) return FinishNow(ctx, s);
  auto* reactor = ctx->DefaultReactor();
  internal::Request r;
  *r.mutable_txn() = *req;
  NodeHost* host = host_;
  host_->Propose(std::move(r), [host, resp, reactor](WriteResult result) {
    if (result.status.ok()) {
      *resp = std::move(result.txn);
      host->FillHeader(resp->mutable_header());
    }
    reactor->Finish(ToGrpc(result.status));
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
  return FinishNow(ctx, ErrMembershipFixed());
}
grpc::ServerUnaryReactor* ClusterService::MemberRemove(grpc::CallbackServerContext* ctx,
                                                       const etcdserverpb::MemberRemoveRequest*,
                                                       etcdserverpb::MemberRemoveResponse*) {
  return FinishNow(ctx, ErrMembershipFixed());
}
grpc::ServerUnaryReactor* ClusterService::MemberUpdate(grpc::CallbackServerContext* ctx,
                                                       const etcdserverpb::MemberUpdateRequest*,
                                                       etcdserverpb::MemberUpdateResponse*) {
  return FinishNow(ctx, ErrMembershipFixed());
}
grpc::ServerUnaryReactor* ClusterService::MemberPromote(grpc::CallbackServerContext* ctx,
                                                        const etcdserverpb::MemberPromoteRequest*,
                                                        etcdserverpb::MemberPromoteResponse*) {
  return FinishNow(ctx, ErrMembershipFixed());
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
  host_->FillHeader(resp->mutable_header());
  return FinishNow(ctx, absl::OkStatus());
}

}  // namespace chainfire::server
