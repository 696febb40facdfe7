// Raft's safety properties, checked incrementally from what the simulation observes. Each
// method returns "" when the observation is consistent, or a description of the violation.
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "chainfire/raft/log_storage.h"
#include "chainfire/raft/types.h"

namespace chainfire::sim {

class SafetyChecker {
 public:
  // A member's log as the checker may inspect it: term of an index (0 beyond the end), and the
  // first index still held (earlier ones are compacted into a snapshot).
  struct LogView {
    std::function<absl::StatusOr<raft::Term>(raft::Index)> term_at;
    raft::Index first_index = 1;
  };

  // Election safety (one leader per term) and leader completeness (the new leader's log holds
  // every entry known committed). `new_leader` is set when this is the first report of `id`
  // leading `term`.
  std::string OnLeader(raft::Term term, raft::NodeId id, const LogView& log,
                       bool* new_leader = nullptr);
  // State-machine safety: every member applies the same entry at a given index.
  std::string OnApplied(raft::NodeId node, const raft::Entry& entry);
  // Log matching, incrementally: an (index, term) pair identifies one entry and the term of its
  // predecessor. `prev_term` is that predecessor's term on `node`, or nullopt when compacted.
  std::string OnDurable(raft::NodeId node, const raft::Entry& entry,
                        std::optional<raft::Term> prev_term);

  // OnDurable for every entry of a write that became durable on `node`, whose log (after the
  // write) is `log`; entries below its first index are skipped.
  std::string OnDurableEntries(raft::NodeId node, const std::vector<raft::Entry>& entries,
                               const raft::LogStorage& log);

  raft::Index max_applied() const { return applied_.empty() ? 0 : applied_.rbegin()->first; }

 private:
  std::map<raft::Term, raft::NodeId> leaders_;
  std::map<raft::Index, std::pair<raft::Term, uint64_t>> applied_;  // index -> term, data hash
  struct DurableEntry {
    uint64_t hash;
    std::optional<raft::Term> prev_term;
  };
  std::map<std::pair<raft::Index, raft::Term>, DurableEntry> durable_;
};

uint64_t HashBytes(const std::string& s);

// Log matching across whole logs (at the end, after convergence): every pair of members agrees
// on the entries both hold. `logs[i]` is member i + 1's. Returns "" or the first pair that
// differs.
std::string CheckLogsMatch(const std::vector<const raft::LogStorage*>& logs);

// Durability: every acknowledged write must be applied on every member. `applied_on(member,
// op_id)` answers for members 1..members. Returns "" or the first lost write.
std::string CheckDurability(const std::vector<uint64_t>& acknowledged, int members,
                            const std::function<bool(int, uint64_t)>& applied_on);

}  // namespace chainfire::sim
