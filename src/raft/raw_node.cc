#include "chainfire/raft/raw_node.h"

#include "absl/strings/str_cat.h"
#include "chainfire/common/check.h"
#include "raft.h"

namespace chainfire::raft {

absl::StatusOr<std::unique_ptr<RawNode>> RawNode::Create(const Config& config,
                                                         const LogStorage* storage) {
  if (absl::Status s = config.Validate(); !s.ok()) return s;
  const HardState hs = storage->InitialHardState();
  if (hs.commit > storage->LastIndex()) {
    return absl::DataLossError(absl::StrCat(
        "hard state commit ", hs.commit, " is beyond the last log index ", storage->LastIndex()));
  }
  if (config.applied > hs.commit && config.applied > storage->FirstIndex() - 1) {
    return absl::DataLossError(
        absl::StrCat("applied index ", config.applied, " is beyond the commit index ", hs.commit));
  }
  auto node = std::unique_ptr<RawNode>(new RawNode(std::make_unique<Raft>(config, storage)));
  // A member starting disk-loss recovery must persist the flag before anything else.
  node->prev_hard_.recovering = hs.recovering;
  return node;
}

RawNode::RawNode(std::unique_ptr<Raft> raft) : raft_(std::move(raft)) {
  prev_soft_ = raft_->soft_state();
  prev_hard_ = raft_->hard_state();
}

RawNode::~RawNode() = default;

void RawNode::Tick() { raft_->Tick(); }
void RawNode::Campaign() { raft_->Hup(false); }
absl::Status RawNode::Propose(std::string data) {
  std::vector<std::string> one;
  one.push_back(std::move(data));
  return raft_->Propose(std::move(one));
}

absl::Status RawNode::ProposeBatch(std::vector<std::string> data) {
  if (data.empty()) return absl::OkStatus();
  return raft_->Propose(std::move(data));
}

absl::Status RawNode::Step(Message message) {
  if (message.to != raft_->id()) {
    return absl::InvalidArgumentError(
        absl::StrCat("message for node ", message.to, " stepped into node ", raft_->id()));
  }
  if (message.type == MessageType::kSnap && !message.snapshot) {
    return absl::InvalidArgumentError("snapshot message without a snapshot");
  }
  return raft_->Step(std::move(message));
}

absl::Status RawNode::ReadIndex(std::string context) {
  return raft_->ReadIndex(std::move(context));
}
void RawNode::TransferLeader(NodeId target) { raft_->TransferLeader(target); }

bool RawNode::HasReady() const {
  const RaftLog& log = raft_->log();
  return raft_->soft_state() != prev_soft_ || raft_->hard_state() != prev_hard_ ||
         log.HasEntriesToPersist() || log.SnapshotToPersist().has_value() ||
         !raft_->early_msgs.empty() || !raft_->msgs.empty() || !raft_->read_states.empty() ||
         log.HasCommittedToApply();
}

Ready RawNode::GetReady() {
  RaftLog& log = raft_->log();
  Ready rd;
  if (raft_->soft_state() != prev_soft_) {
    rd.soft_state = raft_->soft_state();
    prev_soft_ = *rd.soft_state;
  }
  if (raft_->hard_state() != prev_hard_) {
    rd.hard_state = raft_->hard_state();
    prev_hard_ = *rd.hard_state;
  }
  rd.entries = log.EntriesToPersist();
  rd.snapshot = log.SnapshotToPersist();
  rd.committed_entries = log.CommittedToApply();
  rd.early_messages = std::move(raft_->early_msgs);
  rd.messages = std::move(raft_->msgs);
  rd.read_states = std::move(raft_->read_states);
  raft_->early_msgs.clear();
  raft_->msgs.clear();
  raft_->read_states.clear();
  Index handed_out = rd.committed_entries.empty() ? 0 : rd.committed_entries.back().index;
  if (rd.snapshot) handed_out = std::max(handed_out, rd.snapshot->meta.index);
  log.AcceptReady(handed_out);
  return rd;
}

ReadyProgress Ready::Progress() const {
  ReadyProgress p;
  if (snapshot) p.snapshot_index = snapshot->meta.index;
  if (!entries.empty()) {
    p.last_entry_index = entries.back().index;
    p.last_entry_term = entries.back().term;
  }
  if (!committed_entries.empty()) p.last_committed_index = committed_entries.back().index;
  return p;
}

void RawNode::Advance(const ReadyProgress& p) {
  RaftLog& log = raft_->log();
  if (p.snapshot_index != 0) {
    log.StableSnapshotTo(p.snapshot_index);
    log.AppliedTo(p.snapshot_index);
  }
  if (p.last_entry_index != 0) {
    log.StableTo(p.last_entry_index, p.last_entry_term);
    raft_->OnPersisted(p.last_entry_index, p.last_entry_term);
  }
  if (p.last_committed_index != 0) log.AppliedTo(p.last_committed_index);
  raft_->MaybeFinishRecovery();
}

absl::StatusOr<Term> RawNode::TermAt(Index index) const { return raft_->log().TermAt(index); }

Status RawNode::GetStatus() const {
  Status st;
  st.id = raft_->id();
  st.hard_state = raft_->hard_state();
  st.soft_state = raft_->soft_state();
  st.applied = raft_->log().applied();
  st.last_index = raft_->log().LastIndex();
  st.lead_transferee = raft_->lead_transferee();
  if (raft_->role() == Role::kLeader) {
    for (const auto& [id, pr] : raft_->progress()) {
      st.progress[id] = FollowerStatus{pr.match, pr.next, ProgressStateName(pr.state)};
    }
  }
  return st;
}

}  // namespace chainfire::raft
