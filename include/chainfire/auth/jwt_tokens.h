// etcd 3.4's JWT tokens (--auth-token jwt,pub-key=...,priv-key=...,sign-method=...,ttl=...):
// stateless, signed by libjwt (Debian's libjwt) with the member's key. A token carries the user,
// the auth revision it was issued at (so any later auth change makes it old: "revision of auth
// store is old") and its expiry (`exp`, issue time + ttl, default 5 minutes). A member that
// holds only the public key verifies tokens but signs none.
// Thread-safety: immutable after FromOption; Sign and Verify are safe from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace chainfire::auth {

class JwtTokens {
 public:
  // Parses etcd's option string "jwt,pub-key=PATH,priv-key=PATH,sign-method=RS256,ttl=5m"
  // (sign-method: RS256/384/512, ES256/384/512, HS256/384/512 with priv-key as the secret),
  // reads the keys and checks that they sign and verify each other. etcd's errors: "auth:
  // invalid auth options", "auth: invalid auth signature method", "auth: missing key data",
  // "auth: public and private keys don't match".
  static absl::StatusOr<std::unique_ptr<JwtTokens>> FromOption(const std::string& option);

  // A signed token for `user` at auth `revision`, expiring `ttl` after `now_unix`.
  absl::StatusOr<std::string> Sign(const std::string& user, uint64_t revision,
                                   int64_t now_unix) const;
  struct Claims {
    std::string user;
    uint64_t revision = 0;
  };
  // The claims of a token this key signed with this method and that has not expired by
  // `now_unix`; nullopt otherwise (a bad signature, another algorithm, "none", garbage).
  std::optional<Claims> Verify(const std::string& token, int64_t now_unix) const;

  int64_t ttl_seconds() const { return ttl_s_; }
  bool can_sign() const { return !private_key_.empty(); }

 private:
  JwtTokens() = default;
  int alg_ = 0;  // jwt_alg_t
  std::string public_key_, private_key_;
  int64_t ttl_s_ = 300;
};

}  // namespace chainfire::auth
