// Raft: the protocol state machine behind RawNode (internal to src/raft).
//
// Election (randomized timeouts, pre-vote, check-quorum), replication (conflict repair,
// pipelining bounded by max_inflight_msgs), quorum commit restricted to entries of the current
// term, heartbeats, leader transfer, ReadIndex and snapshot install. Outgoing messages collect in
// `early_msgs_`/`msgs_` until RawNode moves them into a Ready. Thread-safety: none.
#pragma once

#include <deque>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "chainfire/common/random.h"
#include "chainfire/raft/config.h"
#include "chainfire/raft/raw_node.h"
#include "progress.h"
#include "raft_log.h"

namespace chainfire::raft {

class Raft {
 public:
  Raft(const Config& config, const LogStorage* storage);

  void Tick();
  void Hup(bool transfer);
  absl::Status Propose(std::vector<std::string> data);
  absl::Status Step(Message m);
  absl::Status ReadIndex(std::string context);
  void TransferLeader(NodeId target);
  // Called by RawNode::Advance once entries up to `last` (of term `last_term`) are durable.
  void OnPersisted(Index last, Term last_term);

  NodeId id() const { return id_; }
  Term term() const { return term_; }
  NodeId lead() const { return lead_; }
  Role role() const { return role_; }
  SoftState soft_state() const { return {lead_, role_}; }
  HardState hard_state() const { return {term_, vote_, log_.committed(), recovering_}; }
  bool recovering() const { return recovering_; }
  // Disk-loss recovery: ends it once the durable log covers what it must (Config::recovering).
  void MaybeFinishRecovery();
  NodeId lead_transferee() const { return lead_transferee_; }
  RaftLog& log() { return log_; }
  const RaftLog& log() const { return log_; }
  const std::map<NodeId, Progress>& progress() const { return prs_; }

  std::vector<Message> early_msgs;
  std::vector<Message> msgs;
  std::vector<ReadState> read_states;

 private:
  // One heartbeat round confirming leadership for the reads that arrived before it started.
  struct ReadRequest {
    NodeId from;  // kNoNode: local
    std::string context;
    Index index;
  };
  struct ReadRound {
    uint64_t id;
    std::vector<ReadRequest> requests;
    std::map<NodeId, bool> acks;
  };

  void Send(Message m);
  void Reset(Term term);
  void BecomeFollower(Term term, NodeId lead);
  void BecomePreCandidate();
  void BecomeCandidate();
  void BecomeLeader();
  void CampaignFor(bool pre, bool transfer);
  // Records a vote and returns +1 (won), -1 (lost) or 0 (pending).
  int Poll(NodeId from, bool granted);
  void ResetRandomizedElectionTimeout();
  bool Promotable() const;
  size_t Quorum() const { return prs_.size() / 2 + 1; }

  void TickElection();
  void TickHeartbeat();
  bool QuorumActive();

  void StepLeader(Message& m);
  void StepCandidate(Message& m);
  void StepFollower(Message& m);
  void HandleVoteRequest(const Message& m);
  void HandleAppend(Message& m);
  void HandleHeartbeat(const Message& m);
  void HandleSnapshot(const Message& m);
  void HandleAppendResponse(const Message& m);
  void HandleHeartbeatResponse(const Message& m);
  void HandleTransferLeader(NodeId target);
  // Leader: notes whether a follower's response says it is recovering from disk loss.
  void NoteRecovering(Progress& pr, const Message& m);

  void AppendEntries(std::vector<std::string> data);
  bool MaybeCommit();
  bool MaybeSendAppend(NodeId to, bool send_if_empty);
  void BroadcastAppend();
  void BroadcastHeartbeat(const std::string& context);
  void AbortLeaderTransfer() { lead_transferee_ = kNoNode; }
  bool CommittedInCurrentTerm() const;

  void StartReadRound(std::vector<ReadRequest> requests);
  void ReleaseReadsWaitingForCommit();
  void AckReadRound(NodeId from, const std::string& context);
  void AnswerRead(const ReadRequest& request);

  NodeId id_;
  Config config_;
  Term term_ = 0;
  NodeId vote_ = kNoNode;
  NodeId lead_ = kNoNode;
  Role role_ = Role::kFollower;
  RaftLog log_;
  std::map<NodeId, Progress> prs_;
  std::map<NodeId, bool> votes_;
  NodeId lead_transferee_ = kNoNode;
  int election_elapsed_ = 0;
  int heartbeat_elapsed_ = 0;
  int randomized_election_timeout_ = 0;
  uint64_t ticks_ = 0;
  Random rng_;

  void SendRecoveryProbes();
  bool recovering_ = false;
  std::map<NodeId, Term> recovery_terms_;  // other members' terms, as they answered probes
  int recovery_probe_elapsed_ = 0;
  Term recovery_term_ = 0;          // the term whose leader's commit index was first seen
  Index recovery_commit_seen_ = 0;  // that commit index

  uint64_t next_read_round_ = 1;
  std::deque<ReadRound> read_rounds_;
  std::vector<ReadRequest> reads_waiting_for_commit_;
};

}  // namespace chainfire::raft
