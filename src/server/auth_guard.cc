#include "chainfire/server/auth_guard.h"

#include <ctime>

#include "chainfire/auth/errors.h"
#include "chainfire/auth/simple_tokens.h"
#include "chainfire/server/client_address.h"
#include "grpcpp/security/auth_context.h"
#include "spdlog/spdlog.h"

namespace chainfire::server {

namespace {

// etcd 3.4 reads the token from `token` (its clients) or else `authorization` (what its JSON
// gateway forwards from the Authorization header).
std::optional<std::string> TokenOf(grpc::ServerContextBase* ctx) {
  const auto& md = ctx->client_metadata();
  auto it = md.find("token");
  if (it == md.end()) it = md.find("authorization");
  if (it == md.end()) return std::nullopt;
  return std::string(it->second.data(), it->second.size());
}

}  // namespace

absl::StatusOr<auth::Caller> AuthGuard::CallerNow(grpc::ServerContextBase* ctx) {
  if (std::optional<std::string> found = TokenOf(ctx)) {
    const std::string& token = *found;
    if (jwt_ != nullptr) {
      // Stateless: the user and the auth revision it was issued at are in the signed token.
      std::optional<auth::JwtTokens::Claims> claims =
          jwt_->Verify(token, static_cast<int64_t>(std::time(nullptr)));
      if (!claims) return auth::ErrInvalidAuthToken();
      return auth::Caller{claims->user, claims->revision};
    }
    std::optional<std::string> user = host_->tokens().Lookup(token, NodeHost::NowMs());
    if (!user) return auth::ErrInvalidAuthToken();
    return auth::Caller{*user, host_->auth().revision()};
  }
  // The certificate names a user only while auth is on (no cost on the hot path otherwise).
  if (client_cert_auth_ && host_->auth().enabled()) {
    std::shared_ptr<const grpc::AuthContext> ac = ctx->auth_context();
    if (ac && ac->IsPeerAuthenticated()) {
      for (const grpc::string_ref& cn : ac->FindPropertyValues("x509_common_name")) {
        if (cn.size() == 0) continue;
        return auth::Caller{std::string(cn.data(), cn.size()), host_->auth().revision()};
      }
    }
  }
  return auth::Caller{};
}

void AuthGuard::Resolve(grpc::ServerContextBase* ctx,
                        std::function<void(absl::StatusOr<auth::Caller>)> done) {
  absl::StatusOr<auth::Caller> now = CallerNow(ctx);
  if (now.ok() || now.status().code() != absl::StatusCode::kUnauthenticated) {
    done(std::move(now));
    return;
  }
  const std::string token = TokenOf(ctx).value_or("");
  std::optional<uint64_t> index = auth::SimpleTokens::IndexOf(token);
  if (jwt_ != nullptr || !index || *index <= host_->applied_index()) {
    done(std::move(now));
    return;
  }
  // Issued through another member: once this one has applied everything committed, the
  // token's entry is applied here too (it committed before the client was given it).
  host_->LinearizableRead(
      [this, ctx, done = std::move(done)](absl::Status s) {
        if (!s.ok()) {
          done(s);
          return;
        }
        done(CallerNow(ctx));
      },
      NodeHost::ReadWork::kPoint);
}

void AuthGuard::Stamp(const auth::Caller& caller, internal::Request* r) {
  if (caller.user.empty()) return;
  r->set_username(caller.user);
  r->set_auth_revision(caller.revision);
}

void AuthGuard::LogRefused(grpc::ServerContextBase* ctx, const auth::Caller& caller,
                           const char* what, const absl::Status& why) {
  const int64_t second = NodeHost::NowMs() / 1000;
  int suppressed = 0;
  {
    std::lock_guard<std::mutex> l(log_mu_);
    if (second != log_second_) {
      log_second_ = second;
      log_lines_ = 0;
    }
    if (++log_lines_ > 20) {
      ++suppressed_;
      return;
    }
    std::swap(suppressed, suppressed_);
  }
  spdlog::warn("auth: refused {} from user '{}' at {}: {}{}", what, caller.user, ClientAddress(ctx),
               std::string(why.message()),
               suppressed > 0 ? fmt::format(" ({} more refusals not logged)", suppressed) : "");
}

}  // namespace chainfire::server
