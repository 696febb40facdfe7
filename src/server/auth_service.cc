#include "chainfire/server/auth_service.h"

#include <algorithm>
#include <ctime>

#include "chainfire/auth/errors.h"
#include "chainfire/auth/password.h"
#include "chainfire/auth/simple_tokens.h"
#include "chainfire/server/client_address.h"
#include "chainfire/server/services.h"
#include "service_helpers.h"
#include "spdlog/spdlog.h"

namespace chainfire::server {
namespace {

absl::Status ErrTooManyRequests() {
  return absl::ResourceExhaustedError("etcdserver: too many requests");
}

// "ipv4:10.0.0.7:41234" -> "ipv4:10.0.0.7": the throttle counts per host, not per connection.
std::string PeerHost(const std::string& peer) {
  const size_t colon = peer.rfind(':');
  return colon == std::string::npos ? peer : peer.substr(0, colon);
}

constexpr int kMaxQueued = 256;

}  // namespace

bool LoginThrottle::Allowed(const std::string& key, int64_t now_ms) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = keys_.find(key);
  return it == keys_.end() || it->second.blocked_until_ms <= now_ms;
}

void LoginThrottle::Failed(const std::string& key, int64_t now_ms) {
  std::lock_guard<std::mutex> l(mu_);
  if (keys_.size() > 100000) {
    // Bounded memory under a storm of distinct names: forget keys whose back-off has passed.
    for (auto it = keys_.begin(); it != keys_.end();) {
      it = it->second.blocked_until_ms <= now_ms ? keys_.erase(it) : std::next(it);
    }
  }
  State& s = keys_[key];
  ++s.failures;
  if (s.failures > kFreeFailures) {
    const int over = std::min(s.failures - kFreeFailures, 6);
    s.blocked_until_ms = now_ms + std::min<int64_t>(10000, int64_t{200} << (over - 1));
  }
}

void LoginThrottle::Succeeded(const std::string& key) {
  std::lock_guard<std::mutex> l(mu_);
  keys_.erase(key);
}

bool AuthService::Offload(std::function<void()> work) {
  if (queued_.fetch_add(1) >= kMaxQueued) {
    queued_.fetch_sub(1);
    return false;
  }
  pool_.Submit([this, work = std::move(work)] {
    queued_.fetch_sub(1);
    work();
  });
  return true;
}

void AuthService::ProposeAs(grpc::CallbackServerContext* ctx, const char* what,
                            const auth::Caller& caller, internal::Request r,
                            std::function<void(WriteResult)> done) {
  AuthGuard::Stamp(caller, &r);
  const bool reads = r.has_user_get() || r.has_user_list() || r.has_role_get() ||
                     r.has_role_list() || r.has_authenticate();
  AuthGuard* guard = guard_;
  guard_->host()->Propose(
      std::move(r), [guard, ctx, what, caller, reads, done = std::move(done)](WriteResult result) {
        if (result.status.ok() && !reads) {
          spdlog::info("auth: {} by user '{}' at {}", what, caller.user, ClientAddress(ctx));
        } else if (internal_services::IsAuthRefusal(result.status)) {
          guard->LogRefused(ctx, caller, what, result.status);
        }
        done(std::move(result));
      });
}

template <typename Response>
grpc::ServerUnaryReactor* AuthService::Run(grpc::ServerUnaryReactor* reactor,
                                           grpc::CallbackServerContext* ctx, const char* what,
                                           internal::Request r, Response* resp,
                                           std::function<void(WriteResult&, Response*)> fill) {
  if (static_cast<int64_t>(r.ByteSizeLong()) > max_request_bytes_) {
    reactor->Finish(ToGrpc(absl::InvalidArgumentError("etcdserver: request is too large")));
    return reactor;
  }
  guard_->Resolve(ctx, [this, ctx, what, r = std::move(r), resp, reactor,
                        fill = std::move(fill)](absl::StatusOr<auth::Caller> caller) mutable {
    if (!caller.ok()) {
      guard_->LogRefused(ctx, auth::Caller{}, what, caller.status());
      reactor->Finish(ToGrpc(caller.status()));
      return;
    }
    NodeHost* host = guard_->host();
    ProposeAs(ctx, what, *caller, std::move(r),
              [host, resp, reactor, fill = std::move(fill)](WriteResult result) {
                if (result.status.ok()) {
                  if (fill) fill(result, resp);
                  host->FillHeader(resp->mutable_header());
                }
                reactor->Finish(ToGrpc(result.status));
              });
  });
  return reactor;
}

grpc::ServerUnaryReactor* AuthService::AuthEnable(grpc::CallbackServerContext* ctx,
                                                  const etcdserverpb::AuthEnableRequest* req,
                                                  etcdserverpb::AuthEnableResponse* resp) {
  internal::Request r;
  *r.mutable_auth_enable() = *req;
  return Run(ctx->DefaultReactor(), ctx, "auth enable", std::move(r), resp);
}

grpc::ServerUnaryReactor* AuthService::AuthDisable(grpc::CallbackServerContext* ctx,
                                                   const etcdserverpb::AuthDisableRequest* req,
                                                   etcdserverpb::AuthDisableResponse* resp) {
  internal::Request r;
  *r.mutable_auth_disable() = *req;
  return Run(ctx->DefaultReactor(), ctx, "auth disable", std::move(r), resp);
}

grpc::ServerUnaryReactor* AuthService::Authenticate(grpc::CallbackServerContext* ctx,
                                                    const etcdserverpb::AuthenticateRequest* req,
                                                    etcdserverpb::AuthenticateResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  NodeHost* host = guard_->host();
  if (static_cast<int64_t>(req->ByteSizeLong()) > max_request_bytes_) {
    reactor->Finish(ToGrpc(absl::InvalidArgumentError("etcdserver: request is too large")));
    return reactor;
  }
  if (!host->auth().enabled()) {
    reactor->Finish(ToGrpc(auth::ErrAuthNotEnabled()));
    return reactor;
  }
  const std::string user_key = "user:" + req->name();
  const std::string host_key = "host:" + PeerHost(ClientAddress(ctx));
  const int64_t now = NodeHost::NowMs();
  if (!throttle_.Allowed(user_key, now) || !throttle_.Allowed(host_key, now)) {
    guard_->LogRefused(ctx, auth::Caller{req->name(), 0}, "login (throttled)",
                       ErrTooManyRequests());
    reactor->Finish(ToGrpc(ErrTooManyRequests()));
    return reactor;
  }
  // As etcd: read the auth store as of everything committed, then check the password.
  host->LinearizableRead(
      [this, ctx, req, resp, reactor, host, user_key, host_key](absl::Status s) {
        if (!s.ok()) {
          reactor->Finish(ToGrpc(s));
          return;
        }
        const bool queued = Offload([this, ctx, req, resp, reactor, host, user_key, host_key] {
          std::shared_ptr<const auth::AuthView> v = host->auth().view();
          const authpb::User* u = v->FindUser(req->name());
          const bool ok = u != nullptr && !(u->has_options() && u->options().no_password()) &&
                          auth::CheckPassword(req->password(), u->password());
          if (!ok) {
            throttle_.Failed(user_key, NodeHost::NowMs());
            throttle_.Failed(host_key, NodeHost::NowMs());
            guard_->LogRefused(ctx, auth::Caller{req->name(), 0}, "login", auth::ErrAuthFailed());
            reactor->Finish(ToGrpc(auth::ErrAuthFailed()));
            return;
          }
          throttle_.Succeeded(user_key);
          throttle_.Succeeded(host_key);
          internal::Request r;
          r.mutable_authenticate()->set_name(req->name());
          const auth::JwtTokens* jwt = guard_->jwt();
          // Simple tokens: a random part whose digest every member registers with the entry's
          // index (the random part itself stays here). JWT: no token in the log; the entry
          // confirms the user, then this member signs.
          const std::string prefix = jwt == nullptr ? auth::SimpleTokens::NewPrefix() : "";
          if (jwt == nullptr) {
            r.mutable_authenticate()->set_token(auth::SimpleTokens::Digest(prefix));
          }
          ProposeAs(ctx, "login", auth::Caller{}, std::move(r),
                    [host, resp, reactor, jwt, prefix, name = req->name()](WriteResult result) {
                      if (result.status.ok()) {
                        *resp = std::move(result.auth.authenticate);
                        if (jwt == nullptr) {
                          // "<digest>.<index>" as applied -> "<random part>.<index>".
                          const std::string& applied = resp->token();
                          resp->set_token(prefix + applied.substr(applied.find('.')));
                        } else {
                          absl::StatusOr<std::string> token =
                              jwt->Sign(name, host->auth().view()->revision(),
                                        static_cast<int64_t>(std::time(nullptr)));
                          if (!token.ok()) {
                            reactor->Finish(ToGrpc(token.status()));
                            return;
                          }
                          resp->set_token(*token);
                        }
                        host->FillHeader(resp->mutable_header());
                      }
                      reactor->Finish(ToGrpc(result.status));
                    });
        });
        if (!queued) reactor->Finish(ToGrpc(ErrTooManyRequests()));
      },
      NodeHost::ReadWork::kPoint);
  return reactor;
}

grpc::ServerUnaryReactor* AuthService::UserAdd(grpc::CallbackServerContext* ctx,
                                               const etcdserverpb::AuthUserAddRequest* req,
                                               etcdserverpb::AuthUserAddResponse* resp) {
  internal::Request r;
  internal::AuthUserPassword* u = r.mutable_user_add();
  u->set_name(req->name());
  *u->mutable_options() = req->options();
  if (req->options().no_password() || req->name().empty() ||
      static_cast<int64_t>(req->ByteSizeLong()) > max_request_bytes_) {
    return Run(ctx->DefaultReactor(), ctx, "user add", std::move(r), resp);  // nothing to hash
  }
  auto* reactor = ctx->DefaultReactor();
  const bool queued = Offload([this, ctx, req, resp, reactor, r = std::move(r)]() mutable {
    absl::StatusOr<std::string> hash = auth::HashPassword(req->password(), bcrypt_cost_);
    if (!hash.ok()) {
      reactor->Finish(ToGrpc(hash.status()));
      return;
    }
    r.mutable_user_add()->set_hashed_password(*hash);
    Run(reactor, ctx, "user add", std::move(r), resp);
  });
  if (!queued) reactor->Finish(ToGrpc(ErrTooManyRequests()));
  return reactor;
}

grpc::ServerUnaryReactor* AuthService::UserChangePassword(
    grpc::CallbackServerContext* ctx, const etcdserverpb::AuthUserChangePasswordRequest* req,
    etcdserverpb::AuthUserChangePasswordResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  if (static_cast<int64_t>(req->ByteSizeLong()) > max_request_bytes_) {
    reactor->Finish(ToGrpc(absl::InvalidArgumentError("etcdserver: request is too large")));
    return reactor;
  }
  const bool queued = Offload([this, ctx, req, resp, reactor] {
    absl::StatusOr<std::string> hash = auth::HashPassword(req->password(), bcrypt_cost_);
    if (!hash.ok()) {
      reactor->Finish(ToGrpc(hash.status()));
      return;
    }
    internal::Request r;
    r.mutable_user_change_password()->set_name(req->name());
    r.mutable_user_change_password()->set_hashed_password(*hash);
    Run(reactor, ctx, "user passwd", std::move(r), resp);
  });
  if (!queued) reactor->Finish(ToGrpc(ErrTooManyRequests()));
  return reactor;
}

grpc::ServerUnaryReactor* AuthService::UserGet(grpc::CallbackServerContext* ctx,
                                               const etcdserverpb::AuthUserGetRequest* req,
                                               etcdserverpb::AuthUserGetResponse* resp) {
  internal::Request r;
  *r.mutable_user_get() = *req;
  return Run<etcdserverpb::AuthUserGetResponse>(
      ctx->DefaultReactor(), ctx, "user get", std::move(r), resp,
      [](WriteResult& w, etcdserverpb::AuthUserGetResponse* out) {
        *out = std::move(w.auth.user_get);
      });
}

grpc::ServerUnaryReactor* AuthService::UserList(grpc::CallbackServerContext* ctx,
                                                const etcdserverpb::AuthUserListRequest* req,
                                                etcdserverpb::AuthUserListResponse* resp) {
  internal::Request r;
  *r.mutable_user_list() = *req;
  return Run<etcdserverpb::AuthUserListResponse>(
      ctx->DefaultReactor(), ctx, "user list", std::move(r), resp,
      [](WriteResult& w, etcdserverpb::AuthUserListResponse* out) {
        *out = std::move(w.auth.user_list);
      });
}

grpc::ServerUnaryReactor* AuthService::UserDelete(grpc::CallbackServerContext* ctx,
                                                  const etcdserverpb::AuthUserDeleteRequest* req,
                                                  etcdserverpb::AuthUserDeleteResponse* resp) {
  internal::Request r;
  *r.mutable_user_delete() = *req;
  return Run(ctx->DefaultReactor(), ctx, "user delete", std::move(r), resp);
}

grpc::ServerUnaryReactor* AuthService::UserGrantRole(
    grpc::CallbackServerContext* ctx, const etcdserverpb::AuthUserGrantRoleRequest* req,
    etcdserverpb::AuthUserGrantRoleResponse* resp) {
  internal::Request r;
  *r.mutable_user_grant_role() = *req;
  return Run(ctx->DefaultReactor(), ctx, "user grant-role", std::move(r), resp);
}

grpc::ServerUnaryReactor* AuthService::UserRevokeRole(
    grpc::CallbackServerContext* ctx, const etcdserverpb::AuthUserRevokeRoleRequest* req,
    etcdserverpb::AuthUserRevokeRoleResponse* resp) {
  internal::Request r;
  *r.mutable_user_revoke_role() = *req;
  return Run(ctx->DefaultReactor(), ctx, "user revoke-role", std::move(r), resp);
}

grpc::ServerUnaryReactor* AuthService::RoleAdd(grpc::CallbackServerContext* ctx,
                                               const etcdserverpb::AuthRoleAddRequest* req,
                                               etcdserverpb::AuthRoleAddResponse* resp) {
  internal::Request r;
  *r.mutable_role_add() = *req;
  return Run(ctx->DefaultReactor(), ctx, "role add", std::move(r), resp);
}

grpc::ServerUnaryReactor* AuthService::RoleGet(grpc::CallbackServerContext* ctx,
                                               const etcdserverpb::AuthRoleGetRequest* req,
                                               etcdserverpb::AuthRoleGetResponse* resp) {
  internal::Request r;
  *r.mutable_role_get() = *req;
  return Run<etcdserverpb::AuthRoleGetResponse>(
      ctx->DefaultReactor(), ctx, "role get", std::move(r), resp,
      [](WriteResult& w, etcdserverpb::AuthRoleGetResponse* out) {
        *out = std::move(w.auth.role_get);
      });
}

grpc::ServerUnaryReactor* AuthService::RoleList(grpc::CallbackServerContext* ctx,
                                                const etcdserverpb::AuthRoleListRequest* req,
                                                etcdserverpb::AuthRoleListResponse* resp) {
  internal::Request r;
  *r.mutable_role_list() = *req;
  return Run<etcdserverpb::AuthRoleListResponse>(
      ctx->DefaultReactor(), ctx, "role list", std::move(r), resp,
      [](WriteResult& w, etcdserverpb::AuthRoleListResponse* out) {
        *out = std::move(w.auth.role_list);
      });
}

grpc::ServerUnaryReactor* AuthService::RoleDelete(grpc::CallbackServerContext* ctx,
                                                  const etcdserverpb::AuthRoleDeleteRequest* req,
                                                  etcdserverpb::AuthRoleDeleteResponse* resp) {
  internal::Request r;
  *r.mutable_role_delete() = *req;
  return Run(ctx->DefaultReactor(), ctx, "role delete", std::move(r), resp);
}

grpc::ServerUnaryReactor* AuthService::RoleGrantPermission(
    grpc::CallbackServerContext* ctx, const etcdserverpb::AuthRoleGrantPermissionRequest* req,
    etcdserverpb::AuthRoleGrantPermissionResponse* resp) {
  internal::Request r;
  *r.mutable_role_grant_permission() = *req;
  return Run(ctx->DefaultReactor(), ctx, "role grant-permission", std::move(r), resp);
}

grpc::ServerUnaryReactor* AuthService::RoleRevokePermission(
    grpc::CallbackServerContext* ctx, const etcdserverpb::AuthRoleRevokePermissionRequest* req,
    etcdserverpb::AuthRoleRevokePermissionResponse* resp) {
  internal::Request r;
  *r.mutable_role_revoke_permission() = *req;
  return Run(ctx->DefaultReactor(), ctx, "role revoke-permission", std::move(r), resp);
}

}  // namespace chainfire::server
