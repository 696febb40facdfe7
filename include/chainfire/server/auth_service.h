// etcd's Auth service. Every operation goes through the Raft log stamped with its caller and
// is decided at apply (auth::AuthStore); passwords are bcrypt-hashed (UserAdd,
// UserChangePassword) and checked (Authenticate) on this member's auth pool, never on a gRPC
// callback thread or the Raft loop, and never reach the log. Failed logins are slowed per user
// name and per remote address. Every change and every refusal is logged with the user and the
// remote address, never a password.
// Thread-safety: gRPC calls it from its threads; Stop() once, after the server shut down.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <string>

#include "chainfire/common/worker_pool.h"
#include "chainfire/server/auth_guard.h"
#include "etcd/rpc.grpc.pb.h"

namespace chainfire::server {

// Consecutive failed logins per key (a user name, a remote host): after kFreeFailures, each
// further attempt within a growing back-off (0.2 s doubling, at most 10 s) is refused at once
// with etcd's "too many requests", without a password check.
class LoginThrottle {
 public:
  static constexpr int kFreeFailures = 5;
  // False when `key` must wait (its back-off has not passed at `now_ms`).
  bool Allowed(const std::string& key, int64_t now_ms);
  void Failed(const std::string& key, int64_t now_ms);
  void Succeeded(const std::string& key);

 private:
  struct State {
    int failures = 0;
    int64_t blocked_until_ms = 0;
  };
  std::mutex mu_;
  std::map<std::string, State> keys_;  // guarded by mu_; bounded by Failed's pruning
};

class AuthService : public etcdserverpb::Auth::CallbackService {
 public:
  // `max_request_bytes`: larger requests are refused (etcd's "request is too large").
  AuthService(AuthGuard* guard, int bcrypt_cost, int64_t max_request_bytes)
      : guard_(guard), bcrypt_cost_(bcrypt_cost), max_request_bytes_(max_request_bytes) {}
  ~AuthService() override { Stop(); }
  void Stop() { pool_.Stop(); }

  grpc::ServerUnaryReactor* AuthEnable(grpc::CallbackServerContext* ctx,
                                       const etcdserverpb::AuthEnableRequest* req,
                                       etcdserverpb::AuthEnableResponse* resp) override;
  grpc::ServerUnaryReactor* AuthDisable(grpc::CallbackServerContext* ctx,
                                        const etcdserverpb::AuthDisableRequest* req,
                                        etcdserverpb::AuthDisableResponse* resp) override;
  grpc::ServerUnaryReactor* Authenticate(grpc::CallbackServerContext* ctx,
                                         const etcdserverpb::AuthenticateRequest* req,
                                         etcdserverpb::AuthenticateResponse* resp) override;
  grpc::ServerUnaryReactor* UserAdd(grpc::CallbackServerContext* ctx,
                                    const etcdserverpb::AuthUserAddRequest* req,
                                    etcdserverpb::AuthUserAddResponse* resp) override;
  grpc::ServerUnaryReactor* UserGet(grpc::CallbackServerContext* ctx,
                                    const etcdserverpb::AuthUserGetRequest* req,
                                    etcdserverpb::AuthUserGetResponse* resp) override;
  grpc::ServerUnaryReactor* UserList(grpc::CallbackServerContext* ctx,
                                     const etcdserverpb::AuthUserListRequest* req,
                                     etcdserverpb::AuthUserListResponse* resp) override;
  grpc::ServerUnaryReactor* UserDelete(grpc::CallbackServerContext* ctx,
                                       const etcdserverpb::AuthUserDeleteRequest* req,
                                       etcdserverpb::AuthUserDeleteResponse* resp) override;
  grpc::ServerUnaryReactor* UserChangePassword(
      grpc::CallbackServerContext* ctx, const etcdserverpb::AuthUserChangePasswordRequest* req,
      etcdserverpb::AuthUserChangePasswordResponse* resp) override;
  grpc::ServerUnaryReactor* UserGrantRole(grpc::CallbackServerContext* ctx,
                                          const etcdserverpb::AuthUserGrantRoleRequest* req,
                                          etcdserverpb::AuthUserGrantRoleResponse* resp) override;
  grpc::ServerUnaryReactor* UserRevokeRole(grpc::CallbackServerContext* ctx,
                                           const etcdserverpb::AuthUserRevokeRoleRequest* req,
                                           etcdserverpb::AuthUserRevokeRoleResponse* resp) override;
  grpc::ServerUnaryReactor* RoleAdd(grpc::CallbackServerContext* ctx,
                                    const etcdserverpb::AuthRoleAddRequest* req,
                                    etcdserverpb::AuthRoleAddResponse* resp) override;
  grpc::ServerUnaryReactor* RoleGet(grpc::CallbackServerContext* ctx,
                                    const etcdserverpb::AuthRoleGetRequest* req,
                                    etcdserverpb::AuthRoleGetResponse* resp) override;
  grpc::ServerUnaryReactor* RoleList(grpc::CallbackServerContext* ctx,
                                     const etcdserverpb::AuthRoleListRequest* req,
                                     etcdserverpb::AuthRoleListResponse* resp) override;
  grpc::ServerUnaryReactor* RoleDelete(grpc::CallbackServerContext* ctx,
                                       const etcdserverpb::AuthRoleDeleteRequest* req,
                                       etcdserverpb::AuthRoleDeleteResponse* resp) override;
  grpc::ServerUnaryReactor* RoleGrantPermission(
      grpc::CallbackServerContext* ctx, const etcdserverpb::AuthRoleGrantPermissionRequest* req,
      etcdserverpb::AuthRoleGrantPermissionResponse* resp) override;
  grpc::ServerUnaryReactor* RoleRevokePermission(
      grpc::CallbackServerContext* ctx, const etcdserverpb::AuthRoleRevokePermissionRequest* req,
      etcdserverpb::AuthRoleRevokePermissionResponse* resp) override;

 private:
  // Runs `work` on the auth pool, or answers "too many requests" when too much is queued.
  bool Offload(std::function<void()> work);
  // Proposes `r` from the call's caller; answers through `reactor` (the call's one default
  // reactor) with `fill(result)` and the header.
  template <typename Response>
  grpc::ServerUnaryReactor* Run(grpc::ServerUnaryReactor* reactor, grpc::CallbackServerContext* ctx,
                                const char* what, internal::Request r, Response* resp,
                                std::function<void(WriteResult&, Response*)> fill = nullptr);
  void ProposeAs(grpc::CallbackServerContext* ctx, const char* what, const auth::Caller& caller,
                 internal::Request r, std::function<void(WriteResult)> done);

  AuthGuard* guard_;
  const int bcrypt_cost_;
  const int64_t max_request_bytes_;
  WorkerPool pool_{2, "cf-auth"};
  std::atomic<int> queued_{0};
  LoginThrottle throttle_;
};

}  // namespace chainfire::server
