#include "chainfire/auth/jwt_tokens.h"

#include <jwt.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace chainfire::auth {
namespace {

absl::Status ErrInvalidAuthOpts() {
  return absl::InvalidArgumentError("auth: invalid auth options");
}

struct JwtFree {
  void operator()(jwt_t* j) const { jwt_free(j); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtFree>;

bool IsHmac(jwt_alg_t a) { return a == JWT_ALG_HS256 || a == JWT_ALG_HS384 || a == JWT_ALG_HS512; }

// Go's time.ParseDuration for the forms etcd's docs use: "300s", "5m", "1h", "1h30m", "90".
std::optional<int64_t> ParseSeconds(const std::string& text) {
  if (text.empty()) return std::nullopt;
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = i;
    while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) ++j;
    if (j == i) return std::nullopt;
    int64_t n = 0;
    if (!absl::SimpleAtoi(text.substr(i, j - i), &n)) return std::nullopt;
    int64_t unit = 1;
    if (j < text.size()) {
      const char u = text[j++];
      if (u == 'h') {
        unit = 3600;
      } else if (u == 'm') {
        unit = 60;
      } else if (u != 's') {
        return std::nullopt;
      }
    } else if (i != 0) {
      return std::nullopt;  // a bare number only on its own
    }
    total += n * unit;
    i = j;
  }
  return total;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read the JWT key file ", path));
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

absl::StatusOr<std::unique_ptr<JwtTokens>> JwtTokens::FromOption(const std::string& option) {
  std::vector<std::string> parts = absl::StrSplit(option, ',');
  if (parts.empty() || parts[0] != "jwt") return ErrInvalidAuthOpts();
  std::map<std::string, std::string> opts;
  for (size_t i = 1; i < parts.size(); ++i) {
    const size_t eq = parts[i].find('=');
    if (eq == std::string::npos) return ErrInvalidAuthOpts();
    opts[parts[i].substr(0, eq)] = parts[i].substr(eq + 1);
  }
  auto t = std::unique_ptr<JwtTokens>(new JwtTokens());
  if (!opts["ttl"].empty()) {
    std::optional<int64_t> ttl = ParseSeconds(opts["ttl"]);
    if (!ttl || *ttl <= 0) return ErrInvalidAuthOpts();
    t->ttl_s_ = *ttl;
  }
  const jwt_alg_t alg = jwt_str_alg(opts["sign-method"].c_str());
  if (alg == JWT_ALG_INVAL || alg == JWT_ALG_NONE || opts["sign-method"].empty()) {
    return absl::InvalidArgumentError("auth: invalid auth signature method");
  }
  t->alg_ = alg;
  for (auto [name, out] :
       {std::pair{"pub-key", &t->public_key_}, std::pair{"priv-key", &t->private_key_}}) {
    if (opts[name].empty()) continue;
    absl::StatusOr<std::string> key = ReadFile(opts[name]);
    if (!key.ok()) return key.status();
    *out = std::move(*key);
  }
  if (IsHmac(alg)) t->public_key_ = t->private_key_;  // a shared secret
  if (t->public_key_.empty()) return absl::InvalidArgumentError("auth: missing key data");
  if (t->can_sign()) {
    absl::StatusOr<std::string> probe = t->Sign("probe", 1, 0);
    if (!probe.ok()) return probe.status();
    if (!t->Verify(*probe, 0)) {
      return absl::InvalidArgumentError("auth: public and private keys don't match");
    }
  }
  return t;
}

absl::StatusOr<std::string> JwtTokens::Sign(const std::string& user, uint64_t revision,
                                            int64_t now_unix) const {
  if (!can_sign()) {
    return absl::FailedPreconditionError("auth: token signing attempted with verify-only key");
  }
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) return absl::InternalError("jwt_new failed");
  JwtPtr j(raw);
  if (jwt_add_grant(j.get(), "username", user.c_str()) != 0 ||
      jwt_add_grant_int(j.get(), "revision", static_cast<long>(revision)) != 0 ||
      jwt_add_grant_int(j.get(), "exp", static_cast<long>(now_unix + ttl_s_)) != 0) {
    return absl::InternalError("building the JWT failed");
  }
  if (jwt_set_alg(j.get(), static_cast<jwt_alg_t>(alg_),
                  reinterpret_cast<const unsigned char*>(private_key_.data()),
                  static_cast<int>(private_key_.size())) != 0) {
    return absl::InvalidArgumentError("auth: the private key does not suit the sign method");
  }
  char* out = jwt_encode_str(j.get());
  if (out == nullptr) return absl::InternalError("signing the JWT failed");
  std::string token(out);
  free(out);  // libjwt 1.10 allocates it with malloc
  return token;
}

std::optional<JwtTokens::Claims> JwtTokens::Verify(const std::string& token,
                                                   int64_t now_unix) const {
  jwt_t* raw = nullptr;
  if (jwt_decode(&raw, token.c_str(), reinterpret_cast<const unsigned char*>(public_key_.data()),
                 static_cast<int>(public_key_.size())) != 0) {
    return std::nullopt;
  }
  JwtPtr j(raw);
  // Only this member's method: never "none", never an HMAC over the public key.
  if (jwt_get_alg(j.get()) != static_cast<jwt_alg_t>(alg_)) return std::nullopt;
  const char* user = jwt_get_grant(j.get(), "username");
  errno = 0;
  const long revision = jwt_get_grant_int(j.get(), "revision");
  if (user == nullptr || errno != 0 || revision < 0) return std::nullopt;
  const long exp = jwt_get_grant_int(j.get(), "exp");
  if (errno != 0 || exp <= now_unix) return std::nullopt;
  return Claims{user, static_cast<uint64_t>(revision)};
}

}  // namespace chainfire::auth
