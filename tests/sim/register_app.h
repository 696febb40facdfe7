// The simulation's replicated state machine: a few string registers with put and
// compare-and-set, deduplicated by operation id (a forwarded proposal may be delivered twice).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "chainfire/node/raft_node.h"

namespace chainfire::sim {

// A client command as stored in a log entry.
struct Command {
  uint64_t op_id = 0;
  char kind = 'P';  // 'P' put key=value, 'C' cas key expected->value,
                    // 'G' grant lease `key` with TTL `value` (ms), 'R' revoke lease `key`
  std::string key;
  std::string expected;
  std::string value;
};
std::string EncodeCommand(const Command& c);
std::optional<Command> DecodeCommand(const std::string& data);

// Callbacks into the simulation. Thread-safety: none.
struct AppHooks {
  std::function<void(const raft::Entry&)> on_entry_applied;
  std::function<void(uint64_t op_id, bool cas_ok)> on_command_applied;
  std::function<void(uint64_t read_id)> on_read_ready;
  std::function<void(uint64_t read_id)> on_read_failed;
  std::function<void(const raft::SoftState&)> on_soft_state;
  // Lease grant / revoke applied (first time on this member's state), and the lease table
  // after a snapshot restore.
  std::function<void(int64_t id, int64_t ttl_ms)> on_lease_granted;
  std::function<void(int64_t id)> on_lease_revoked;
  std::function<void(const std::map<int64_t, int64_t>&)> on_leases_restored;
};

class RegisterApp : public node::Application {
 public:
  explicit RegisterApp(AppHooks hooks) : hooks_(std::move(hooks)) {}

  void Apply(const raft::Entry& entry) override;
  void RestoreSnapshot(const raft::Snapshot& snapshot) override;
  std::string TakeSnapshot() override;
  void OnReadReady(uint64_t read_id) override { hooks_.on_read_ready(read_id); }
  void OnReadFailed(uint64_t read_id) override { hooks_.on_read_failed(read_id); }
  void OnSoftStateChange(const raft::SoftState& s) override { hooks_.on_soft_state(s); }

  std::string Get(const std::string& key) const;
  bool HasApplied(uint64_t op_id) const { return applied_ops_.count(op_id) > 0; }

 private:
  void RestoreState(const raft::Snapshot& snapshot);
  AppHooks hooks_;
  std::map<std::string, std::string> registers_;
  std::map<uint64_t, bool> applied_ops_;  // op id -> cas outcome (true for puts)
  std::map<int64_t, int64_t> leases_;     // lease id -> TTL (ms)
};

}  // namespace chainfire::sim
