#include "chainfire/auth/simple_tokens.h"

#include <openssl/rand.h>
#include <openssl/sha.h>

#include "absl/strings/numbers.h"
#include "chainfire/common/check.h"

namespace chainfire::auth {

std::string SimpleTokens::NewPrefix() {
  static constexpr char kLetters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  constexpr size_t kLength = 16;
  std::string out;
  out.reserve(kLength);
  while (out.size() < kLength) {
    unsigned char b[32];
    CF_CHECK(RAND_bytes(b, sizeof(b)) == 1) << "the CSPRNG failed";
    for (unsigned char c : b) {
      // 52 letters: reject 208..255 so every letter is equally likely.
      if (c < 208 && out.size() < kLength) out.push_back(kLetters[c % 52]);
    }
  }
  return out;
}

std::optional<uint64_t> SimpleTokens::IndexOf(const std::string& token) {
  const size_t dot = token.find('.');
  if (dot == std::string::npos || token.find('.', dot + 1) != std::string::npos) {
    return std::nullopt;
  }
  uint64_t index = 0;
  if (!absl::SimpleAtoi(token.substr(dot + 1), &index)) return std::nullopt;
  return index;
}

std::string SimpleTokens::Digest(const std::string& prefix) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(prefix.data()), prefix.size(), md);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * sizeof(md));
  for (unsigned char b : md) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

std::string SimpleTokens::Key(const std::string& token) {
  if (!IndexOf(token)) return std::string();
  const size_t dot = token.find('.');
  return Digest(token.substr(0, dot)) + token.substr(dot);
}

void SimpleTokens::Assign(const std::string& key, const std::string& user, int64_t now_ms) {
  std::lock_guard<std::mutex> l(mu_);
  tokens_[key] = Entry{user, now_ms};
}

std::optional<std::string> SimpleTokens::Lookup(const std::string& token, int64_t now_ms) {
  const std::string key = Key(token);
  if (key.empty()) return std::nullopt;
  std::lock_guard<std::mutex> l(mu_);
  auto it = tokens_.find(key);
  if (it == tokens_.end()) return std::nullopt;
  if (now_ms - it->second.last_used_ms > ttl_ms_) {
    tokens_.erase(it);
    return std::nullopt;
  }
  it->second.last_used_ms = std::max(it->second.last_used_ms, now_ms);
  return it->second.user;
}

void SimpleTokens::ForgetUser(const std::string& user) {
  std::lock_guard<std::mutex> l(mu_);
  for (auto it = tokens_.begin(); it != tokens_.end();) {
    it = it->second.user == user ? tokens_.erase(it) : std::next(it);
  }
}

void SimpleTokens::Clear() {
  std::lock_guard<std::mutex> l(mu_);
  tokens_.clear();
}

void SimpleTokens::Expire(int64_t now_ms) {
  std::lock_guard<std::mutex> l(mu_);
  for (auto it = tokens_.begin(); it != tokens_.end();) {
    it = now_ms - it->second.last_used_ms > ttl_ms_ ? tokens_.erase(it) : std::next(it);
  }
}

size_t SimpleTokens::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return tokens_.size();
}

}  // namespace chainfire::auth
