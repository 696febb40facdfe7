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
  char kind = 'P';  // 'P' put key=value, 'C' cas key expected->value
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
  AppHooks hooks_;
  std::map<std::string, std::string> registers_;
  std::map<uint64_t, bool> applied_ops_;  // op id -> cas outcome (true for puts)
};

}  // namespace chainfire::sim
