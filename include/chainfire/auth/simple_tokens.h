// etcd 3.4's simple tokens: "<16 random letters>.<log index>", registered by every member when
// it applies the Authenticate entry, so a token works on any member; each member forgets a
// token after `ttl` without use (--auth-token-ttl), when its user is deleted or changes
// password, and when auth is disabled. Volatile: a restart or a restore forgets them all.
// Unlike etcd, the random part never reaches the Raft log: the entry carries its SHA-256
// (Digest), and members register and look tokens up by "<digest>.<index>" (Key), so a copy of
// the log or a data dir holds no usable token. Times are milliseconds of the caller's
// monotonic clock.
// Thread-safety: every method is safe from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace chainfire::auth {

class SimpleTokens {
 public:
  explicit SimpleTokens(int64_t ttl_ms) : ttl_ms_(ttl_ms) {}

  // A fresh random token prefix (16 letters, from the OS's CSPRNG).
  static std::string NewPrefix();
  // The log index a token names, or nullopt when it is not shaped as a simple token.
  static std::optional<uint64_t> IndexOf(const std::string& token);
  // The hex SHA-256 of a token's random part: what the Authenticate entry carries.
  static std::string Digest(const std::string& prefix);
  // What a token is registered under: "<Digest(random part)>.<index>" ("" for a malformed one).
  static std::string Key(const std::string& token);

  // Registers the token whose Key is `key`.
  void Assign(const std::string& key, const std::string& user, int64_t now_ms);
  // The user of a live token (as the client presents it), renewing it; nullopt when unknown
  // or expired.
  std::optional<std::string> Lookup(const std::string& token, int64_t now_ms);
  void ForgetUser(const std::string& user);
  void Clear();
  // Drops tokens idle for longer than the TTL.
  void Expire(int64_t now_ms);
  size_t size() const;

 private:
  struct Entry {
    std::string user;
    int64_t last_used_ms;
  };
  const int64_t ttl_ms_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> tokens_;  // guarded by mu_
};

}  // namespace chainfire::auth
