// Password hashing with bcrypt (libxcrypt, Debian's libcrypt): slow on purpose (tens of ms at
// cost 10), so callers run it off the gRPC callback threads and off the Raft loop.
// Thread-safety: both functions are reentrant.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace chainfire::auth {

// etcd's --bcrypt-cost range and default.
inline constexpr int kMinBcryptCost = 4;
inline constexpr int kMaxBcryptCost = 31;
inline constexpr int kDefaultBcryptCost = 10;

// A bcrypt hash ("$2b$<cost>$...") of `password` with a fresh random salt.
absl::StatusOr<std::string> HashPassword(const std::string& password, int cost);
// Whether `password` matches `hash` (any bcrypt variant: $2a$, $2b$, $2y$). False for a
// malformed hash.
bool CheckPassword(const std::string& password, const std::string& hash);

}  // namespace chainfire::auth
