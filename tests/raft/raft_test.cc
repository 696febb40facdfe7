// Focused tests of RawNode's contract; the protocol paths are covered by the golden tests.
#include <memory>
#include <vector>

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

// Found by the peer-message fuzzer: a snapshot of term 0 beyond the log "matched" the term 0
// that TermAt answers past the last index, and the follower committed entries it did not have.
TEST(RawNode, SnapshotBeyondTheLogIsNotMistakenForAMatch) {
  Member m = MakeMember(1, 3);
  Message msg;
  msg.type = MessageType::kSnap;
  msg.from = 2;
  msg.to = 1;
  msg.term = 2;
  msg.snapshot = Snapshot{{10, 0}, "state"};
  ASSERT_TRUE(m.raw->Step(msg).ok());
  const Ready rd = m.raw->GetReady();
  ASSERT_TRUE(rd.snapshot.has_value()) << "installed as a snapshot, not taken as a log match";
  EXPECT_EQ(rd.snapshot->meta.index, 10u);
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

// Makes member 1 the leader with both followers acknowledging its no-op (so appends pipeline).
void ElectLeaderAndReplicate(Member& m) {
  ElectLeader(m);
  Persist(m, m.raw->GetReady());
  ASSERT_TRUE(m.raw->Step(AppResp(2, 1)).ok());
  ASSERT_TRUE(m.raw->Step(AppResp(3, 1)).ok());
  if (m.raw->HasReady()) Persist(m, m.raw->GetReady());
}

std::vector<Message> AppsTo(const std::vector<Message>& msgs, NodeId to) {
  std::vector<Message> out;
  for (const Message& msg : msgs) {
    if (msg.type == MessageType::kApp && msg.to == to && !msg.entries.empty()) out.push_back(msg);
  }
  return out;
}

TEST(RawNode, ProposeBatchIsOneAppendAndOneMessagePerFollower) {
  Member m = MakeMember(1, 3);
  ElectLeaderAndReplicate(m);
  ASSERT_TRUE(m.raw->ProposeBatch({"a", "b", "c"}).ok());
  Ready rd = m.raw->GetReady();
  ASSERT_EQ(rd.entries.size(), 3u);
  EXPECT_EQ(rd.entries[0].data, "a");
  EXPECT_EQ(rd.entries[2].data, "c");
  for (NodeId follower : {2, 3}) {
    const std::vector<Message> apps = AppsTo(rd.early_messages, follower);
    ASSERT_EQ(apps.size(), 1u) << "one append for the batch";
    ASSERT_EQ(apps[0].entries.size(), 3u);
    EXPECT_EQ(apps[0].entries[1].data, "b");
  }
  Persist(m, std::move(rd));
  // One proposal each: one append each (what batching saves).
  for (const char* d : {"d", "e", "f"}) ASSERT_TRUE(m.raw->Propose(d).ok());
  rd = m.raw->GetReady();
  EXPECT_EQ(AppsTo(rd.early_messages, 2).size(), 3u);
}

TEST(RawNode, FollowerForwardsABatchAsOneProposal) {
  Member m = MakeMember(2, 3);
  Message hb;  // a heartbeat of leader 1 in term 1 makes member 2 its follower
  hb.type = MessageType::kHeartbeat;
  hb.from = 1;
  hb.to = 2;
  hb.term = 1;
  ASSERT_TRUE(m.raw->Step(hb).ok());
  Persist(m, m.raw->GetReady());
  ASSERT_TRUE(m.raw->ProposeBatch({"a", "b"}).ok());
  Ready rd = m.raw->GetReady();
  std::vector<Message> props;
  for (const Message& msg : rd.messages) {
    if (msg.type == MessageType::kProp) props.push_back(msg);
  }
  for (const Message& msg : rd.early_messages) {
    if (msg.type == MessageType::kProp) props.push_back(msg);
  }
  ASSERT_EQ(props.size(), 1u);
  EXPECT_EQ(props[0].to, 1u);
  ASSERT_EQ(props[0].entries.size(), 2u);
  EXPECT_EQ(props[0].entries[0].data, "a");
  EXPECT_EQ(props[0].entries[1].data, "b");
}

TEST(RawNode, ProposeBatchWithoutLeaderIsDroppedWhole) {
  Member m = MakeMember(1, 3);
  EXPECT_EQ(m.raw->ProposeBatch({"x", "y"}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(m.raw->HasReady());
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

namespace recovery {

Member MakeRecovering(NodeId id, int n) {
  Member m;
  Config c = MakeConfig(id, n);
  c.recovering = true;
  m.raw = std::move(*RawNode::Create(c, m.storage.get()));
  return m;
}

std::vector<Message> Drain(Member& m) {
  std::vector<Message> out;
  while (m.raw->HasReady()) {
    auto msgs = Persist(m, m.raw->GetReady());
    out.insert(out.end(), msgs.begin(), msgs.end());
  }
  return out;
}

Message From(NodeId from, MessageType type, Term term) {
  Message r;
  r.type = type;
  r.from = from;
  r.to = 2;
  r.term = term;
  return r;
}

TEST(DiskLossRecovery, GrantsNoVoteNeverCampaignsAndFlagsItsMessages) {
  Member m = MakeRecovering(2, 3);
  EXPECT_TRUE(m.raw->GetStatus().hard_state.recovering);
  for (int i = 0; i < 100; ++i) m.raw->Tick();
  for (const Message& out : Drain(m)) {
    EXPECT_EQ(out.type, MessageType::kRecoveryProbe) << "no campaign, only probes";
    EXPECT_TRUE(out.recovering);
  }
  EXPECT_TRUE(m.storage->InitialHardState().recovering) << "the flag is durable";
  Message vote = From(1, MessageType::kVote, 5);
  ASSERT_TRUE(m.raw->Step(vote).ok());
  bool answered = false;
  for (const Message& out : Drain(m)) {
    if (out.type != MessageType::kVoteResp) continue;
    answered = true;
    EXPECT_TRUE(out.reject);
  }
  EXPECT_TRUE(answered);
  EXPECT_EQ(m.raw->GetStatus().hard_state.vote, kNoNode);
}

TEST(DiskLossRecovery, FinishesOnlyWithTheLeadersCommitAndAMajoritysTerms) {
  Member m = MakeRecovering(2, 3);
  // The leader of term 3 has committed index 2 (an entry of its term).
  Message app = From(1, MessageType::kApp, 3);
  app.index = 0;
  app.log_term = 0;
  app.commit = 2;
  app.entries = {{1, 1, "a"}, {3, 2, ""}};
  ASSERT_TRUE(m.raw->Step(app).ok());
  Drain(m);
  EXPECT_TRUE(m.raw->GetStatus().hard_state.recovering) << "no member told it its term yet";
  Message probe = From(1, MessageType::kRecoveryProbeResp, 0);
  probe.log_term = 3;
  ASSERT_TRUE(m.raw->Step(probe).ok());
  Drain(m);
  EXPECT_TRUE(m.raw->GetStatus().hard_state.recovering) << "one of two others is no majority";
  probe.from = 3;
  probe.log_term = 4;  // member 3 is in term 4: a vote there may have come from us
  ASSERT_TRUE(m.raw->Step(probe).ok());
  Drain(m);
  const HardState hs = m.raw->GetStatus().hard_state;
  EXPECT_FALSE(hs.recovering);
  EXPECT_EQ(hs.term, 4u);
  EXPECT_EQ(hs.vote, 2u) << "recorded as having voted in term 4: never votes there again";
  EXPECT_FALSE(m.storage->InitialHardState().recovering);
  Message vote = From(3, MessageType::kVote, 4);
  vote.index = 2;
  vote.log_term = 3;
  ASSERT_TRUE(m.raw->Step(vote).ok());
  for (const Message& out : Drain(m)) {
    if (out.type == MessageType::kVoteResp) EXPECT_TRUE(out.reject);
  }
  vote.term = 5;
  ASSERT_TRUE(m.raw->Step(vote).ok());
  bool granted = false;
  for (const Message& out : Drain(m)) granted |= out.type == MessageType::kVoteResp && !out.reject;
  EXPECT_TRUE(granted) << "a full member again in later terms";
}

TEST(DiskLossRecovery, LeaderCountsARecoveringFollowerTowardNoQuorum) {
  Member m = MakeMember(1, 3);
  ElectLeader(m);
  Persist(m, m.raw->GetReady());
  ASSERT_TRUE(m.raw->Step(AppResp(2, 1)).ok());
  Drain(m);
  ASSERT_EQ(m.raw->GetStatus().hard_state.commit, 1u);
  ASSERT_TRUE(m.raw->Propose("x").ok());
  Drain(m);
  // Member 2 lost its disk: its acknowledgement of index 2 does not count.
  Message r = AppResp(2, 2);
  r.recovering = true;
  ASSERT_TRUE(m.raw->Step(r).ok());
  Drain(m);
  EXPECT_EQ(m.raw->GetStatus().hard_state.commit, 1u);
  ASSERT_TRUE(m.raw->Step(AppResp(3, 2)).ok());
  Drain(m);
  EXPECT_EQ(m.raw->GetStatus().hard_state.commit, 2u) << "a healthy follower does count";
}

}  // namespace recovery

}  // namespace
}  // namespace chainfire::raft
