// Each safety checker fires on a fabricated observation that violates its property, and stays
// quiet on the consistent one.
#include "safety_checker.h"

#include <set>

#include "gtest/gtest.h"

namespace chainfire::sim {
namespace {

SafetyChecker::LogView LogOf(std::map<raft::Index, raft::Term> terms, raft::Index first = 1) {
  SafetyChecker::LogView v;
  v.first_index = first;
  v.term_at = [terms](raft::Index i) -> absl::StatusOr<raft::Term> {
    auto it = terms.find(i);
    return it == terms.end() ? 0 : it->second;
  };
  return v;
}

TEST(SafetyChecker, ElectionSafety) {
  SafetyChecker c;
  bool fresh = false;
  EXPECT_EQ(c.OnLeader(3, 1, LogOf({}), &fresh), "");
  EXPECT_TRUE(fresh);
  EXPECT_EQ(c.OnLeader(3, 1, LogOf({}), &fresh), "") << "the same leader again is fine";
  EXPECT_FALSE(fresh);
  EXPECT_EQ(c.OnLeader(4, 2, LogOf({}), &fresh), "");
  EXPECT_EQ(c.OnLeader(3, 2, LogOf({})).rfind("election safety", 0), 0u);
}

TEST(SafetyChecker, LeaderCompleteness) {
  SafetyChecker c;
  ASSERT_EQ(c.OnApplied(1, {1, 1, "a"}), "");
  ASSERT_EQ(c.OnApplied(1, {2, 2, "b"}), "");
  EXPECT_EQ(c.OnLeader(3, 2, LogOf({{1, 1}, {2, 2}, {3, 3}})), "");
  EXPECT_EQ(c.OnLeader(4, 3, LogOf({{1, 1}})).rfind("leader completeness", 0), 0u)
      << "index 2 is missing";
  EXPECT_EQ(c.OnLeader(5, 1, LogOf({{1, 1}, {2, 4}})).rfind("leader completeness", 0), 0u)
      << "index 2 has another term";
  EXPECT_EQ(c.OnLeader(6, 1, LogOf({{3, 3}}, /*first=*/3)), "") << "compacted entries count";
}

TEST(SafetyChecker, StateMachineSafety) {
  SafetyChecker c;
  EXPECT_EQ(c.OnApplied(1, {1, 5, "x"}), "");
  EXPECT_EQ(c.OnApplied(2, {1, 5, "x"}), "");
  EXPECT_EQ(c.OnApplied(3, {1, 5, "y"}).rfind("state machine safety", 0), 0u);
  EXPECT_EQ(c.OnApplied(3, {2, 5, "x"}).rfind("state machine safety", 0), 0u);
  EXPECT_EQ(c.max_applied(), 5u);
}

TEST(SafetyChecker, LogMatching) {
  SafetyChecker c;
  EXPECT_EQ(c.OnDurable(1, {2, 7, "x"}, 1), "");
  EXPECT_EQ(c.OnDurable(2, {2, 7, "x"}, 1), "");
  EXPECT_EQ(c.OnDurable(2, {2, 7, "x"}, std::nullopt), "") << "a compacted predecessor";
  EXPECT_EQ(c.OnDurable(3, {2, 7, "other"}, 1).rfind("log matching", 0), 0u);
  EXPECT_EQ(c.OnDurable(3, {2, 7, "x"}, 2).rfind("log matching", 0), 0u)
      << "same entry after a different predecessor";
}

TEST(SafetyChecker, Durability) {
  const std::set<std::pair<int, uint64_t>> applied = {{1, 10}, {2, 10}, {1, 11}};
  auto applied_on = [&](int m, uint64_t op) { return applied.count({m, op}) > 0; };
  EXPECT_EQ(CheckDurability({10}, 2, applied_on), "");
  EXPECT_EQ(CheckDurability({10, 11}, 2, applied_on),
            "durability: acknowledged write #11 missing on n2");
}

}  // namespace
}  // namespace chainfire::sim
