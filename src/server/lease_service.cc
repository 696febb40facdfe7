// Lease: grant and revoke through the log, keep-alives and TTL queries at the leader (see
// services.h).
#include <memory>
#include <random>

#include "absl/strings/str_cat.h"
#include "chainfire/server/services.h"
#include "chainfire/transport/peer_transport.h"
#include "service_helpers.h"

namespace chainfire::server {

using internal_services::FinishNow;
using internal_services::ProposeAndReply;

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
  if (req->keys() && (host_->auth().enabled() || ctx->client_metadata().count("token") > 0)) {
    // Listing a lease's keys needs READ on every one of them (etcd's fix for CVE-2023-32082,
    // in 3.4.26 and 3.5.9), checked here, on the member the caller reached, before any
    // forwarding: the keys attached to a lease are replicated state every member holds.
    absl::StatusOr<auth::Caller> caller = guard_->CallerNow(ctx);
    absl::Status s = caller.status();
    if (caller.ok()) {
      auto view = host_->auth().view();
      for (const std::string& k : host_->kv().LeaseKeys(req->id())) {
        if (s = view->CheckKeys(*caller, k, "", false); !s.ok()) break;
      }
    }
    if (!s.ok()) {
      guard_->LogRefused(ctx, caller.ok() ? *caller : auth::Caller{}, "a lease's keys", s);
      return FinishNow(ctx, s);
    }
  }
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
