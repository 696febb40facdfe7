// Lessor: when leases expire. The leases themselves (ID, TTL, attached keys) are replicated
// state; their expiry is decided by the leader alone, which proposes a revoke for an expired
// lease. Every member records grants and revokes as they apply, so a member that becomes leader
// knows every lease; it then gives each its full TTL plus `extend` (an election timeout), since
// it cannot know when the previous leader last renewed them (etcd 3.4's rule). Time is passed
// in (milliseconds of a monotonic clock), so the simulation drives it.
// Thread-safety: thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <vector>

namespace chainfire::node {

class Lessor {
 public:
  // TEST ONLY: `testing_no_reset_on_promote` reproduces the bug the reset prevents.
  explicit Lessor(bool testing_no_reset_on_promote = false)
      : testing_no_reset_on_promote_(testing_no_reset_on_promote) {}

  void Grant(int64_t id, int64_t ttl_ms, int64_t now_ms);
  void Revoke(int64_t id);
  // Forgets every lease (before re-granting them from a newly installed state).
  void Clear();
  // This member just became leader.
  void Promote(int64_t now_ms, int64_t extend_ms);
  // Leader: renews `id`; its TTL in ms, or 0 when the lease is unknown.
  int64_t Renew(int64_t id, int64_t now_ms);
  // Leader: the expired leases not yet handed out for revocation (marks them).
  std::vector<int64_t> TakeExpired(int64_t now_ms);
  // A revoke proposal failed: the lease may be handed out again.
  void RevokeFailed(int64_t id);
  // Remaining ms (>= 0) and granted TTL, or nullopt when unknown.
  std::optional<std::pair<int64_t, int64_t>> Remaining(int64_t id, int64_t now_ms) const;

 private:
  struct Lease {
    int64_t ttl_ms;
    int64_t expiry_ms;
  };
  const bool testing_no_reset_on_promote_;
  mutable std::mutex mu_;
  std::map<int64_t, Lease> leases_;  // guarded by mu_
  std::set<int64_t> revoking_;       // guarded by mu_
};

}  // namespace chainfire::node
