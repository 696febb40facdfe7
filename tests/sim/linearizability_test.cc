// The linearizability checker on recorded histories with known answers.
#include "linearizability.h"

#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "history_io.h"

namespace chainfire::sim {
namespace {

Operation Put(uint64_t id, const char* v, uint64_t call, uint64_t ret) {
  Operation op;
  op.id = id;
  op.kind = OpKind::kPut;
  op.key = "k";
  op.value = v;
  op.call = call;
  op.ret = ret;
  return op;
}
Operation Get(uint64_t id, const char* out, uint64_t call, uint64_t ret) {
  Operation op = Put(id, "", call, ret);
  op.kind = OpKind::kGet;
  op.output = out;
  return op;
}
Operation Cas(uint64_t id, const char* expected, const char* v, bool ok, uint64_t call,
              uint64_t ret) {
  Operation op = Put(id, v, call, ret);
  op.kind = OpKind::kCas;
  op.expected = expected;
  op.cas_ok = ok;
  return op;
}
Operation Unknown(Operation op) {
  op.unknown = true;
  return op;
}

TEST(Linearizability, SequentialHistory) {
  EXPECT_EQ(CheckLinearizable({Put(1, "a", 1, 2), Get(2, "a", 3, 4), Cas(3, "a", "b", true, 5, 6),
                               Get(4, "b", 7, 8), Cas(5, "a", "c", false, 9, 10)})
                .result,
            LinearizabilityResult::kOk);
}

TEST(Linearizability, ConcurrentWritesEitherOrder) {
  // Two overlapping puts; reads after both may see either, but both reads must agree.
  EXPECT_EQ(CheckLinearizable({Put(1, "a", 1, 4), Put(2, "b", 2, 3), Get(3, "a", 5, 6)}).result,
            LinearizabilityResult::kOk);
  EXPECT_EQ(CheckLinearizable(
                {Put(1, "a", 1, 4), Put(2, "b", 2, 3), Get(3, "a", 5, 6), Get(4, "b", 7, 8)})
                .result,
            LinearizabilityResult::kViolation);
}

TEST(Linearizability, StaleReadIsAViolation) {
  const auto report = CheckLinearizable({Put(1, "a", 1, 2), Put(2, "b", 3, 4), Get(3, "a", 5, 6)});
  EXPECT_EQ(report.result, LinearizabilityResult::kViolation);
  EXPECT_EQ(report.key, "k");
  EXPECT_NE(report.explanation.find("get(k)->'a'"), std::string::npos);
}

TEST(Linearizability, UnknownWriteMayTakeEffectLateOrNever) {
  // The timed-out put may land after the read of "a"...
  EXPECT_EQ(CheckLinearizable({Put(1, "a", 1, 2), Unknown(Put(2, "b", 3, 0)), Get(3, "a", 5, 6),
                               Get(4, "b", 7, 8)})
                .result,
            LinearizabilityResult::kOk);
  // ...or never.
  EXPECT_EQ(
      CheckLinearizable({Put(1, "a", 1, 2), Unknown(Put(2, "b", 3, 0)), Get(3, "a", 9, 10)}).result,
      LinearizabilityResult::kOk);
  // But it cannot take effect before it was called.
  EXPECT_EQ(CheckLinearizable({Get(1, "b", 1, 2), Unknown(Put(2, "b", 3, 0))}).result,
            LinearizabilityResult::kViolation);
}

TEST(Linearizability, FailedCasMustSeeAnotherValue) {
  EXPECT_EQ(CheckLinearizable({Put(1, "a", 1, 2), Cas(2, "a", "b", false, 3, 4)}).result,
            LinearizabilityResult::kViolation);
}

TEST(Linearizability, RegistersAreIndependent) {
  Operation other = Put(9, "z", 1, 2);
  other.key = "other";
  EXPECT_EQ(CheckLinearizable({other, Get(1, "", 3, 4)}).result, LinearizabilityResult::kOk);
}

// Histories as the chaos lane records them (JSON Lines), read back and checked.
std::vector<Operation> ReadFixture(const std::string& name) {
  std::ifstream in(std::string(CHAINFIRE_SIM_FIXTURES) + "/" + name);
  EXPECT_TRUE(in.good()) << name;
  auto ops = ReadHistory(in);
  EXPECT_TRUE(ops.ok()) << ops.status();
  return ops.ok() ? *ops : std::vector<Operation>{};
}

TEST(HistoryFile, RecordedHistoriesGetTheirKnownVerdicts) {
  const auto good = ReadFixture("history-linearizable.jsonl");
  ASSERT_EQ(good.size(), 10u);
  EXPECT_EQ(CheckLinearizable(good).result, LinearizabilityResult::kOk);
  const auto stale = CheckLinearizable(ReadFixture("history-stale-read.jsonl"));
  EXPECT_EQ(stale.result, LinearizabilityResult::kViolation);
  EXPECT_EQ(stale.key, "r1");
  EXPECT_EQ(CheckLinearizable(ReadFixture("history-lost-write.jsonl")).result,
            LinearizabilityResult::kViolation);
}

TEST(HistoryFile, LinesRoundTrip) {
  const std::vector<Operation> ops = {Put(1, "a", 1, 2), Unknown(Put(2, "b", 3, 0)),
                                      Get(3, "a\"\n\x01", 5, 6), Cas(4, "a", "c", true, 7, 8),
                                      Unknown(Cas(5, "c", "d", false, 9, 0))};
  std::stringstream ss;
  for (const Operation& op : ops) ss << HistoryLine(op) << "\n";
  auto back = ReadHistory(ss);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), ops.size());
  for (size_t i = 0; i < ops.size(); ++i) {
    EXPECT_EQ(DescribeOperation((*back)[i]), DescribeOperation(ops[i]));
    EXPECT_EQ((*back)[i].output, ops[i].output);
  }
}

TEST(HistoryFile, BadLinesAreRefusedByLineNumber) {
  for (const auto& [text, want] : std::vector<std::pair<std::string, std::string>>{
           {"{\"id\":1,\"kind\":\"put\",\"key\":\"k\",\"value\":\"v\",\"call\":1,\"ret\":2}\nnot "
            "json",
            "history line 2: not a JSON object"},
           {"{\"id\":1,\"kind\":\"del\",\"key\":\"k\",\"call\":1,\"ret\":2}", "unknown kind"},
           {"{\"id\":1,\"kind\":\"get\",\"key\":\"k\",\"call\":1,\"ret\":2}", "output"},
           {"{\"id\":1,\"kind\":\"put\",\"key\":\"k\",\"value\":\"v\",\"call\":5,\"ret\":2}",
            "returns before it is called"}}) {
    std::stringstream ss(text);
    auto r = ReadHistory(ss);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.status().message().find(want), std::string::npos) << r.status();
  }
}

}  // namespace
}  // namespace chainfire::sim
