#include "safety_checker.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "chainfire/common/check.h"
#include "chainfire/raft/raw_node.h"

namespace chainfire::sim {

uint64_t HashBytes(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

std::string CheckDurability(const std::vector<uint64_t>& acknowledged, int members,
                            const std::function<bool(int, uint64_t)>& applied_on) {
  for (uint64_t op : acknowledged) {
    for (int m = 1; m <= members; ++m) {
      if (!applied_on(m, op)) {
        return absl::StrCat("durability: acknowledged write #", op, " missing on n", m);
      }
    }
  }
  return "";
}

std::string SafetyChecker::OnLeader(raft::Term term, raft::NodeId id, const LogView& log,
                                    bool* new_leader) {
  auto [it, inserted] = leaders_.emplace(term, id);
  if (new_leader) *new_leader = inserted;
  if (!inserted && it->second != id) {
    return absl::StrCat("election safety: n", it->second, " and n", id, " both lead term ", term);
  }
  if (!inserted) return "";
  for (const auto& [index, te] : applied_) {
    if (index < log.first_index) continue;  // compacted into the leader's snapshot
    auto t = log.term_at(index);
    if (!t.ok()) continue;
    if (*t != te.first) {
      return absl::StrCat("leader completeness: n", id, " leads term ", term, " but has term ", *t,
                          " at committed index ", index, " (committed term ", te.first, ")");
    }
  }
  return "";
}

std::string SafetyChecker::OnApplied(raft::NodeId node, const raft::Entry& e) {
  const uint64_t h = HashBytes(e.data);
  auto [it, inserted] = applied_.emplace(e.index, std::make_pair(e.term, h));
  if (!inserted && (it->second.first != e.term || it->second.second != h)) {
    return absl::StrCat("state machine safety: n", node, " applied ", raft::Describe(e),
                        " at index ", e.index, " where another member applied term ",
                        it->second.first);
  }
  return "";
}

std::string SafetyChecker::OnDurable(raft::NodeId node, const raft::Entry& e,
                                     std::optional<raft::Term> prev_term) {
  const uint64_t h = HashBytes(e.data);
  auto [it, inserted] =
      durable_.emplace(std::make_pair(e.index, e.term), DurableEntry{h, prev_term});
  if (inserted) return "";
  if (it->second.hash != h) {
    return absl::StrCat("log matching: two different entries at index ", e.index, " term ", e.term,
                        " (n", node, ")");
  }
  if (prev_term && it->second.prev_term && *prev_term != *it->second.prev_term) {
    return absl::StrCat("log matching: entry ", e.index, "/", e.term, " follows term ", *prev_term,
                        " on n", node, " but term ", *it->second.prev_term, " elsewhere");
  }
  if (!it->second.prev_term) it->second.prev_term = prev_term;
  return "";
}

std::string SafetyChecker::OnDurableEntries(raft::NodeId node,
                                            const std::vector<raft::Entry>& entries,
                                            const raft::LogStorage& log) {
  for (const raft::Entry& e : entries) {
    if (e.index < log.FirstIndex()) continue;
    std::optional<raft::Term> prev;
    if (e.index == 1) {
      prev = 0;
    } else if (auto t = log.TermAt(e.index - 1); t.ok()) {
      prev = *t;
    }
    if (std::string v = OnDurable(node, e, prev); !v.empty()) return v;
  }
  return "";
}

std::string CheckLogsMatch(const std::vector<const raft::LogStorage*>& logs) {
  for (size_t a = 0; a < logs.size(); ++a) {
    for (size_t b = a + 1; b < logs.size(); ++b) {
      const raft::LogStorage& x = *logs[a];
      const raft::LogStorage& y = *logs[b];
      const raft::Index lo = std::max(x.FirstIndex(), y.FirstIndex());
      const raft::Index hi = std::min(x.LastIndex(), y.LastIndex());
      if (lo > hi) continue;
      auto ex = x.Entries(lo, hi + 1, raft::kNoLimit);
      auto ey = y.Entries(lo, hi + 1, raft::kNoLimit);
      CF_CHECK(ex.ok() && ey.ok()) << "final log read failed";
      if (*ex != *ey) return absl::StrCat("log matching: n", a + 1, " and n", b + 1, " differ");
    }
  }
  return "";
}

}  // namespace chainfire::sim
