#include "chainfire/auth/password.h"

#include <crypt.h>

#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"

namespace chainfire::auth {

absl::StatusOr<std::string> HashPassword(const std::string& password, int cost) {
  if (cost < kMinBcryptCost || cost > kMaxBcryptCost) {
    return absl::InvalidArgumentError(absl::StrCat("bcrypt cost ", cost, " is outside [",
                                                   kMinBcryptCost, ", ", kMaxBcryptCost, "]"));
  }
  if (password.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("a password must not contain a NUL byte");
  }
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn("$2b$", static_cast<unsigned long>(cost), nullptr, 0, salt, sizeof(salt)) ==
      nullptr) {
    return absl::InternalError(absl::StrCat("bcrypt salt: ", std::strerror(errno)));
  }
  auto data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  const char* out = crypt_r(password.c_str(), salt, data.get());
  if (out == nullptr || out[0] == '*') return absl::InternalError("bcrypt hashing failed");
  return std::string(out);
}

bool CheckPassword(const std::string& password, const std::string& hash) {
  if (hash.size() < 7 || hash[0] != '$' || password.find('\0') != std::string::npos) return false;
  auto data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  const char* out = crypt_r(password.c_str(), hash.c_str(), data.get());
  if (out == nullptr || out[0] == '*') return false;
  const size_t n = std::strlen(out);
  if (n != hash.size()) return false;
  // Constant-time comparison.
  unsigned char diff = 0;
  for (size_t i = 0; i < n; ++i) diff |= static_cast<unsigned char>(out[i] ^ hash[i]);
  return diff == 0;
}

}  // namespace chainfire::auth
