#include "register_app.h"

#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "chainfire/common/check.h"

namespace chainfire::sim {

std::string EncodeCommand(const Command& c) {
  return absl::StrCat(c.op_id, "|", std::string(1, c.kind), "|", c.key, "|", c.expected, "|",
                      c.value);
}

std::optional<Command> DecodeCommand(const std::string& data) {
  std::vector<std::string> parts = absl::StrSplit(data, '|');
  if (parts.size() != 5 || parts[1].size() != 1) return std::nullopt;
  Command c;
  c.op_id = std::stoull(parts[0]);
  c.kind = parts[1][0];
  c.key = parts[2];
  c.expected = parts[3];
  c.value = parts[4];
  return c;
}

void RegisterApp::Apply(const raft::Entry& entry) {
  hooks_.on_entry_applied(entry);
  if (entry.data.empty()) return;  // a leader's no-op
  std::optional<Command> c = DecodeCommand(entry.data);
  CF_CHECK(c.has_value()) << "undecodable command at index " << entry.index;
  if (applied_ops_.count(c->op_id)) return;  // duplicate proposal
  if (c->kind == 'G' || c->kind == 'R') {
    const int64_t id = std::stoll(c->key);
    bool ok = false;
    if (c->kind == 'G' && !leases_.count(id)) {
      leases_[id] = std::stoll(c->value);
      ok = true;
      if (hooks_.on_lease_granted) hooks_.on_lease_granted(id, leases_[id]);
    } else if (c->kind == 'R' && leases_.erase(id)) {
      ok = true;
      if (hooks_.on_lease_revoked) hooks_.on_lease_revoked(id);
    }
    applied_ops_[c->op_id] = ok;
    return;
  }
  bool ok = true;
  if (c->kind == 'C') ok = Get(c->key) == c->expected;
  if (ok) registers_[c->key] = c->value;
  applied_ops_[c->op_id] = ok;
  hooks_.on_command_applied(c->op_id, ok);
}

std::string RegisterApp::Get(const std::string& key) const {
  auto it = registers_.find(key);
  return it == registers_.end() ? std::string() : it->second;
}

// Snapshot text: "R <key> <value>" and "O <op id> <0|1>" lines (values contain no spaces).
std::string RegisterApp::TakeSnapshot() {
  std::string out;
  for (const auto& [k, v] : registers_) absl::StrAppend(&out, "R ", k, " ", v, "\n");
  for (const auto& [id, ok] : applied_ops_) absl::StrAppend(&out, "O ", id, " ", ok ? 1 : 0, "\n");
  for (const auto& [id, ttl] : leases_) absl::StrAppend(&out, "L ", id, " ", ttl, "\n");
  return out;
}

void RegisterApp::RestoreSnapshot(const raft::Snapshot& snapshot) {
  RestoreState(snapshot);
  if (hooks_.on_leases_restored) hooks_.on_leases_restored(leases_);
}

void RegisterApp::RestoreState(const raft::Snapshot& snapshot) {
  registers_.clear();
  applied_ops_.clear();
  leases_.clear();
  std::istringstream in(snapshot.data);
  std::string tag;
  while (in >> tag) {
    if (tag == "R") {
      std::string k, v;
      in >> k >> v;
      registers_[k] = v;
    } else if (tag == "L") {
      int64_t id, ttl;
      in >> id >> ttl;
      leases_[id] = ttl;
    } else {
      uint64_t id;
      int ok;
      in >> id >> ok;
      applied_ops_[id] = ok != 0;
    }
  }
}

}  // namespace chainfire::sim
