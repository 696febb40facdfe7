#include "chainfire/node/lessor.h"

#include <algorithm>

namespace chainfire::node {

void Lessor::Grant(int64_t id, int64_t ttl_ms, int64_t now_ms) {
  std::lock_guard<std::mutex> l(mu_);
  leases_[id] = Lease{ttl_ms, now_ms + ttl_ms};
}

void Lessor::Revoke(int64_t id) {
  std::lock_guard<std::mutex> l(mu_);
  leases_.erase(id);
  revoking_.erase(id);
}

void Lessor::Promote(int64_t now_ms, int64_t extend_ms) {
  std::lock_guard<std::mutex> l(mu_);
  revoking_.clear();
  if (testing_no_reset_on_promote_) return;
  for (auto& [id, lease] : leases_) lease.expiry_ms = now_ms + lease.ttl_ms + extend_ms;
}

int64_t Lessor::Renew(int64_t id, int64_t now_ms) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = leases_.find(id);
  if (it == leases_.end() || revoking_.count(id)) return 0;
  it->second.expiry_ms = now_ms + it->second.ttl_ms;
  return it->second.ttl_ms;
}

std::vector<int64_t> Lessor::TakeExpired(int64_t now_ms) {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<int64_t> out;
  for (const auto& [id, lease] : leases_) {
    if (lease.expiry_ms <= now_ms && revoking_.insert(id).second) out.push_back(id);
  }
  return out;
}

void Lessor::RevokeFailed(int64_t id) {
  std::lock_guard<std::mutex> l(mu_);
  revoking_.erase(id);
}

std::optional<std::pair<int64_t, int64_t>> Lessor::Remaining(int64_t id, int64_t now_ms) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = leases_.find(id);
  if (it == leases_.end()) return std::nullopt;
  return std::make_pair(std::max<int64_t>(0, it->second.expiry_ms - now_ms), it->second.ttl_ms);
}

void Lessor::Clear() {
  std::lock_guard<std::mutex> l(mu_);
  leases_.clear();
  revoking_.clear();
}

}  // namespace chainfire::node
