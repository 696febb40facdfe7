// Raft: linearizable reads (ReadIndex): a leader confirms its leadership with a heartbeat
// round, then answers the read with its commit index; a follower asks the leader.
#include "chainfire/common/check.h"
#include "raft.h"

namespace chainfire::raft {

// ---------------------------------------------------------------------------------------------
// ReadIndex

absl::Status Raft::ReadIndex(std::string context) {
  Message m;
  m.type = MessageType::kReadIndex;
  m.from = kNoNode;  // local
  m.context = std::move(context);
  if (role_ == Role::kLeader) {
    StepLeader(m);
    return absl::OkStatus();
  }
  m.from = id_;
  return Step(std::move(m));
}

void Raft::StartReadRound(std::vector<ReadRequest> requests) {
  if (prs_.size() == 1) {  // a single member is its own quorum
    for (const ReadRequest& r : requests) AnswerRead(r);
    return;
  }
  ReadRound round;
  round.id = next_read_round_++;
  round.requests = std::move(requests);
  round.acks[id_] = true;
  const std::string context = absl::StrCat("r", round.id);
  read_rounds_.push_back(std::move(round));
  BroadcastHeartbeat(context);
}

void Raft::ReleaseReadsWaitingForCommit() {
  if (reads_waiting_for_commit_.empty() || !CommittedInCurrentTerm()) return;
  std::vector<ReadRequest> waiting = std::move(reads_waiting_for_commit_);
  reads_waiting_for_commit_.clear();
  for (ReadRequest& r : waiting) r.index = log_.committed();
  StartReadRound(std::move(waiting));
}

void Raft::AckReadRound(NodeId from, const std::string& context) {
  auto it = std::find_if(read_rounds_.begin(), read_rounds_.end(),
                         [&](const ReadRound& r) { return absl::StrCat("r", r.id) == context; });
  if (it == read_rounds_.end()) return;
  it->acks[from] = true;
  if (it->acks.size() < Quorum()) return;
  // A confirmed round also confirms every earlier round: leadership held after they started.
  auto end = std::next(it);
  for (auto r = read_rounds_.begin(); r != end; ++r) {
    for (const ReadRequest& req : r->requests) AnswerRead(req);
  }
  read_rounds_.erase(read_rounds_.begin(), end);
}

void Raft::AnswerRead(const ReadRequest& request) {
  if (request.from == kNoNode || request.from == id_) {
    read_states.push_back(ReadState{request.index, request.context});
    return;
  }
  Message m;
  m.type = MessageType::kReadIndexResp;
  m.to = request.from;
  m.index = request.index;
  m.context = request.context;
  Send(std::move(m));
}

}  // namespace chainfire::raft
