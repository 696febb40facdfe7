// RaftNode's writes: which Readies it asks storage to fsync (only what raft.MustSync would).
#include "chainfire/node/raft_node.h"

#include <memory>
#include <vector>

#include "gtest/gtest.h"

namespace chainfire::node {
namespace {

// Applies every write at once to a MemoryStorage and records it.
class RecordingStorage : public NodeStorage {
 public:
  raft::HardState InitialHardState() const override { return mem_.InitialHardState(); }
  absl::StatusOr<std::vector<raft::Entry>> Entries(raft::Index lo, raft::Index hi,
                                                   uint64_t max_bytes) const override {
    return mem_.Entries(lo, hi, max_bytes);
  }
  absl::StatusOr<raft::Term> TermAt(raft::Index i) const override { return mem_.TermAt(i); }
  raft::Index FirstIndex() const override { return mem_.FirstIndex(); }
  raft::Index LastIndex() const override { return mem_.LastIndex(); }
  absl::StatusOr<raft::Snapshot> GetSnapshot() const override { return mem_.GetSnapshot(); }

  void SubmitWrite(PersistRequest r) override {
    EXPECT_TRUE(mem_.Append(r.entries).ok());
    if (r.hard_state) mem_.SetHardState(*r.hard_state);
    writes.push_back(std::move(r));
    ++completed_;
  }
  absl::StatusOr<size_t> PollCompletedWrites() override {
    const size_t n = completed_;
    completed_ = 0;
    return n;
  }
  absl::Status SaveSnapshotAndCompact(raft::Index, std::string, raft::Index) override {
    return absl::OkStatus();
  }
  absl::Status PersistRecovering() override { return absl::OkStatus(); }

  std::vector<PersistRequest> writes;

 private:
  raft::MemoryStorage mem_;
  size_t completed_ = 0;
};

struct NoNetwork : Transport {
  void Send(raft::Message) override {}
};

struct CountingApp : Application {
  void Apply(const raft::Entry&) override { ++applied; }
  void RestoreSnapshot(const raft::Snapshot&) override {}
  std::string TakeSnapshot() override { return ""; }
  void OnReadReady(uint64_t) override {}
  void OnReadFailed(uint64_t) override {}
  int applied = 0;
};

TEST(RaftNode, OnlyAWriteThatMovesNothingButTheCommitIndexSkipsTheFsync) {
  RecordingStorage storage;
  NoNetwork net;
  CountingApp app;
  raft::Config c;
  c.id = 1;
  c.voters = {1};
  c.seed = 3;
  auto node = RaftNode::Create(c, NodeOptions{}, &storage, &net, &app);
  ASSERT_TRUE(node.ok()) << node.status();
  RaftNode& n = **node;
  n.Campaign();
  while (n.PumpOnce()) {
  }
  ASSERT_EQ(n.status().soft_state.role, raft::Role::kLeader);
  ASSERT_TRUE(n.Propose("x").ok());
  while (n.PumpOnce()) {
  }
  EXPECT_EQ(app.applied, 2) << "the leader's no-op and x";
  int synced_with_entries = 0, commit_only = 0, term_or_vote = 0;
  raft::HardState prev;
  for (const PersistRequest& w : storage.writes) {
    const bool entries = !w.entries.empty();
    const bool term_vote =
        w.hard_state && (w.hard_state->term != prev.term || w.hard_state->vote != prev.vote);
    if (term_vote) ++term_or_vote;
    if (entries) ++synced_with_entries;
    if (entries || term_vote) {
      EXPECT_TRUE(w.sync) << "entries, a new term or a vote are always fsynced";
    } else {
      ASSERT_TRUE(w.hard_state.has_value());
      EXPECT_FALSE(w.sync) << "only the commit index moved";
      EXPECT_GT(w.hard_state->commit, prev.commit);
      ++commit_only;
    }
    if (w.hard_state) prev = *w.hard_state;
  }
  EXPECT_GE(synced_with_entries, 2);
  EXPECT_GE(term_or_vote, 1) << "the election";
  EXPECT_GE(commit_only, 1) << "the commit of x moved alone";
  EXPECT_EQ(storage.InitialHardState().commit, 2u);
}

}  // namespace
}  // namespace chainfire::node
