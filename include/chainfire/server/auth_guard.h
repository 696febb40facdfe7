// Who a client call comes from, as etcd 3.4 decides it: the simple token in the call's `token`
// metadata (what clientv3, etcdctl and python-etcd3 send), or else, with --client-cert-auth,
// the CN of the verified client certificate; or nobody. And the log of refused requests.
// Thread-safety: every method is safe from any thread (gRPC's).
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "chainfire/auth/auth_store.h"
#include "chainfire/auth/jwt_tokens.h"
#include "chainfire/server/node_host.h"
#include "grpcpp/server_context.h"

namespace chainfire::server {

class AuthGuard {
 public:
  // `jwt`: the JWT provider (--auth-token jwt,...), or nullptr for simple tokens.
  AuthGuard(NodeHost* host, bool client_cert_auth, const auth::JwtTokens* jwt = nullptr)
      : host_(host), client_cert_auth_(client_cert_auth), jwt_(jwt) {}

  // Without waiting: the token's user (ErrInvalidAuthToken for a token this member does not
  // know or that expired), the certificate's CN, or nobody. The revision is the auth store's
  // now (etcd's for simple tokens).
  absl::StatusOr<auth::Caller> CallerNow(grpc::ServerContextBase* ctx);
  // As CallerNow, but a token whose Authenticate entry this member has not applied yet (it was
  // issued through another member) is looked up again after a linearizable read. `done` runs
  // once, on this thread or on the member's.
  void Resolve(grpc::ServerContextBase* ctx,
               std::function<void(absl::StatusOr<auth::Caller>)> done);
  // Stamps a request to propose with its caller (checked again at apply).
  static void Stamp(const auth::Caller& caller, internal::Request* r);
  // Logs a refused request with the user and the remote address (at most 20 lines a second;
  // the rest are counted in the next line).
  void LogRefused(grpc::ServerContextBase* ctx, const auth::Caller& caller, const char* what,
                  const absl::Status& why);
  NodeHost* host() const { return host_; }
  const auth::JwtTokens* jwt() const { return jwt_; }

 private:
  NodeHost* host_;
  const bool client_cert_auth_;
  const auth::JwtTokens* jwt_;
  std::mutex log_mu_;
  int64_t log_second_ = 0;  // guarded by log_mu_
  int log_lines_ = 0;       // guarded by log_mu_
  int suppressed_ = 0;      // guarded by log_mu_
};

}  // namespace chainfire::server
