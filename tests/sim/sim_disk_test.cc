// The fake disk: record format, torn tails, and what survives a crash.
#include "sim_disk.h"

#include "gtest/gtest.h"

namespace chainfire::sim {
namespace {

node::PersistRequest Write(raft::Index first, raft::Index last, raft::Term term) {
  node::PersistRequest r;
  for (raft::Index i = first; i <= last; ++i)
    r.entries.push_back({term, i, "v" + std::to_string(i)});
  r.hard_state = raft::HardState{term, 1, 0};
  return r;
}

TEST(SimDisk, RecordsRoundTrip) {
  node::PersistRequest r = Write(1, 3, 2);
  r.snapshot = raft::Snapshot{{0, 0}, ""};
  std::string bytes = EncodeRecord(r) + EncodeRecord(Write(4, 4, 2));
  size_t valid = 0;
  auto decoded = DecodeRecords(bytes, &valid);
  ASSERT_EQ(decoded.size(), 2u);
  EXPECT_EQ(valid, bytes.size());
  EXPECT_EQ(decoded[0].entries, r.entries);
  EXPECT_EQ(decoded[0].hard_state, r.hard_state);
  EXPECT_EQ(decoded[1].entries[0].index, 4u);
}

TEST(SimDisk, TornTailIsCut) {
  const std::string first = EncodeRecord(Write(1, 2, 1));
  const std::string second = EncodeRecord(Write(3, 4, 1));
  for (size_t cut = 1; cut < second.size(); ++cut) {
    size_t valid = 0;
    auto decoded = DecodeRecords(first + second.substr(0, cut), &valid);
    ASSERT_EQ(decoded.size(), 1u) << "cut at " << cut;
    EXPECT_EQ(valid, first.size());
  }
}

TEST(SimDisk, CorruptRecordStopsReplay) {
  std::string bytes = EncodeRecord(Write(1, 2, 1));
  bytes[bytes.size() - 1] ^= 0x40;  // a flipped bit in the payload
  size_t valid = 0;
  EXPECT_TRUE(DecodeRecords(bytes, &valid).empty());
  EXPECT_EQ(valid, 0u);
}

TEST(SimStorage, OnlySyncedWritesSurviveACrash) {
  SimDisk disk;
  DiskFaults faults;
  faults.min_latency_ms = faults.max_latency_ms = 5;
  Random rng(1);
  uint64_t now = 0;
  {
    SimStorage s(&disk, &faults, &rng, &now, nullptr);
    s.SubmitWrite(Write(1, 2, 1));
    now = 5;
    ASSERT_EQ(*s.PollCompletedWrites(), 1u);
    EXPECT_EQ(s.LastIndex(), 2u);
    s.SubmitWrite(Write(3, 3, 1));  // never synced
    EXPECT_EQ(*s.PollCompletedWrites(), 0u);
    EXPECT_EQ(s.LastIndex(), 2u) << "not visible before it is durable";
  }
  disk.Crash(rng, /*keep_unsynced=*/0);
  SimStorage reopened(&disk, &faults, &rng, &now, nullptr);
  EXPECT_EQ(reopened.LastIndex(), 2u);
  EXPECT_EQ(reopened.InitialHardState().term, 1u);
}

TEST(SimStorage, FailedFsyncIsReportedAndSticky) {
  SimDisk disk;
  DiskFaults faults;
  faults.fsync_failure = 1.0;
  Random rng(1);
  uint64_t now = 0;
  SimStorage s(&disk, &faults, &rng, &now, nullptr);
  s.SubmitWrite(Write(1, 1, 1));
  now = 100;
  EXPECT_FALSE(s.PollCompletedWrites().ok());
  EXPECT_FALSE(s.PollCompletedWrites().ok()) << "nothing counts as durable after a failure";
  EXPECT_EQ(s.LastIndex(), 0u);
}

TEST(SimStorage, DroppedVoteBugSwitch) {
  SimDisk disk;
  DiskFaults faults;
  faults.testing_drop_vote = true;
  Random rng(1);
  uint64_t now = 0;
  {
    SimStorage s(&disk, &faults, &rng, &now, nullptr);
    s.SubmitWrite(Write(1, 1, 3));
    now = 100;
    ASSERT_EQ(*s.PollCompletedWrites(), 1u);
  }
  SimStorage reopened(&disk, &faults, &rng, &now, nullptr);
  EXPECT_EQ(reopened.InitialHardState().term, 3u);
  EXPECT_EQ(reopened.InitialHardState().vote, raft::kNoNode) << "the bug forgets the vote";
}

}  // namespace
}  // namespace chainfire::sim
