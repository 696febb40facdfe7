// Focused tests of RawNode's contract; the protocol paths are covered by the golden tests.
#include <memory>

#include "chainfire/raft/raw_node.h"
#include "gtest/gtest.h"

namespace chainfire::raft {
namespace {

struct Member {
  std::unique_ptr<MemoryStorage> storage = std::make_unique<MemoryStorage>();
  std::unique_ptr<RawNode> raw;
};

Config MakeConfig(NodeId id, int n) {
  Config c;
  c.id = id;
  for (int i = 1; i <= n; ++i) c.voters.push_back(i);
  c.seed = 42;
  return c;
}

Member MakeMember(NodeId id, int n, bool count_unpersisted = false) {
  Member m;
  Config c = MakeConfig(id, n);
  c.testing_count_unpersisted_own_entries = count_unpersisted;
  m.raw = std::move(*RawNode::Create(c, m.storage.get()));
  return m;
}

// Persists a Ready into the member's storage (synchronously) and advances.
std::vector<Message> Persist(Member& m, Ready rd) {
  if (rd.snapshot) {
    EXPECT_TRUE(m.storage->ApplySnapshot(*rd.snapshot).ok());
  }
  EXPECT_TRUE(m.storage->Append(rd.entries).ok());
  if (rd.hard_state) m.storage->SetHardState(*rd.hard_state);
  std::vector<Message> out = rd.early_messages;
  out.insert(out.end(), rd.messages.begin(), rd.messages.end());
  m.raw->Advance(rd);
  return out;
}

TEST(RawNode, ConfigIsValidated) {
  Config c = MakeConfig(4, 3);
  MemoryStorage s;
  EXPECT_FALSE(RawNode::Create(c, &s).ok()) << "id outside voters";
  c = MakeConfig(1, 3);
  c.election_tick = 1;
  EXPECT_FALSE(RawNode::Create(c, &s).ok()) << "election_tick <= heartbeat_tick";
}

TEST(RawNode, RefusesMessagesForOtherNodes) {
  Member m = MakeMember(1, 3);
  Message msg;
  msg.type = MessageType::kHeartbeat;
  msg.from = 2;
  msg.to = 3;
  msg.term = 1;
  EXPECT_EQ(m.raw->Step(msg).code(), absl::StatusCode::kInvalidArgument);
}

TEST(RawNode, ProposalWithoutLeaderIsDropped) {
  Member m = MakeMember(1, 3);
  EXPECT_EQ(m.raw->Propose("x").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(m.raw->ReadIndex("r").code(), absl::StatusCode::kFailedPrecondition);
}

TEST(RawNode, SingleMemberAppliesOnlyWhatItHasPersisted) {
  Member m = MakeMember(1, 1);
  m.raw->Campaign();
  Ready rd = m.raw->GetReady();
  ASSERT_EQ(rd.soft_state->role, Role::kLeader);
  ASSERT_EQ(rd.entries.size(), 1u);  // the no-op
  EXPECT_TRUE(rd.committed_entries.empty()) << "not durable yet, so not committed";
  Persist(m, std::move(rd));
  ASSERT_TRUE(m.raw->HasReady());
  rd = m.raw->GetReady();
  ASSERT_EQ(rd.committed_entries.size(), 1u);
  EXPECT_EQ(rd.hard_state->commit, 1u);
}

TEST(RawNode, CandidateVoteRequestsWaitForItsWrite) {
  Member m = MakeMember(1, 3);
  Config c = MakeConfig(1, 3);
  m.raw->Campaign();
  Ready rd = m.raw->GetReady();
  EXPECT_TRUE(rd.early_messages.empty());
  ASSERT_EQ(rd.messages.size(), 2u);
  EXPECT_EQ(rd.messages[0].type, MessageType::kPreVote);
}

// Makes member 1 the leader of a 3-member cluster whose followers are simulated by hand.
void ElectLeader(Member& m) {
  m.raw->Campaign();
  Persist(m, m.raw->GetReady());  // pre-candidate
  for (NodeId from : {2, 3}) {
    Message r;
    r.type = MessageType::kPreVoteResp;
    r.from = from;
    r.to = 1;
    r.term = 1;
    ASSERT_TRUE(m.raw->Step(r).ok());
  }
  Persist(m, m.raw->GetReady());  // candidate, term 1
  for (NodeId from : {2, 3}) {
    Message r;
    r.type = MessageType::kVoteResp;
    r.from = from;
    r.to = 1;
    r.term = 1;
    ASSERT_TRUE(m.raw->Step(r).ok());
  }
  ASSERT_EQ(m.raw->GetStatus().soft_state.role, Role::kLeader);
}

Message AppResp(NodeId from, Index index) {
  Message r;
  r.type = MessageType::kAppResp;
  r.from = from;
  r.to = 1;
  r.term = 1;
  r.index = index;
  return r;
}

TEST(RawNode, LeaderCountsItsOwnEntryOnlyAfterPersisting) {
  Member m = MakeMember(1, 3);
  ElectLeader(m);
  Ready rd = m.raw->GetReady();  // the no-op: appends go out early, before the write
  ASSERT_EQ(rd.entries.size(), 1u);
  ASSERT_FALSE(rd.early_messages.empty());
  EXPECT_EQ(rd.early_messages[0].type, MessageType::kApp);
  // A follower acknowledges before the leader's own write is durable.
  ASSERT_TRUE(m.raw->Step(AppResp(2, 1)).ok());
  EXPECT_EQ(m.raw->GetStatus().hard_state.commit, 0u) << "leader + 1 ack, but leader unsynced";
  Persist(m, std::move(rd));
  EXPECT_EQ(m.raw->GetStatus().hard_state.commit, 1u);
}

TEST(RawNode, TestingSwitchReproducesCommitBeforeLeaderFsync) {
  Member m = MakeMember(1, 3, /*count_unpersisted=*/true);
  ElectLeader(m);
  Ready rd = m.raw->GetReady();
  ASSERT_TRUE(m.raw->Step(AppResp(2, 1)).ok());
  EXPECT_EQ(m.raw->GetStatus().hard_state.commit, 1u) << "the bug: committed before the fsync";
}

TEST(RawNode, SeveralReadiesMayBeOutstanding) {
  Member m = MakeMember(1, 3);
  ElectLeader(m);
  Ready first = m.raw->GetReady();
  ASSERT_TRUE(m.raw->Propose("a").ok());
  ASSERT_TRUE(m.raw->HasReady());
  Ready second = m.raw->GetReady();
  ASSERT_EQ(second.entries.size(), 1u);
  EXPECT_EQ(second.entries[0].index, 2u) << "the second Ready holds only the new entry";
  ASSERT_TRUE(m.raw->Step(AppResp(2, 2)).ok());
  Persist(m, std::move(first));
  EXPECT_EQ(m.raw->GetStatus().hard_state.commit, 1u) << "index 2 is not durable locally yet";
  Persist(m, std::move(second));
  EXPECT_EQ(m.raw->GetStatus().hard_state.commit, 2u);
}

TEST(RawNode, SameSeedSameBehaviour) {
  auto run = [] {
    Member m = MakeMember(2, 3);
    int ticks = 0;
    while (!m.raw->HasReady()) {
      m.raw->Tick();
      ++ticks;
    }
    return ticks;
  };
  const int a = run();
  EXPECT_EQ(a, run());
  EXPECT_GE(a, 10);
  EXPECT_LT(a, 20) << "randomized timeout is in [election_tick, 2*election_tick)";
}

}  // namespace
}  // namespace chainfire::raft
