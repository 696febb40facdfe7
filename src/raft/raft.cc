// Raft: construction, roles and elections, ticks, Step and the follower's and candidate's
// handling, recovery after disk loss. Replication and leader transfer: raft_replication.cc;
// ReadIndex: raft_reads.cc.
#include "raft.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "chainfire/common/check.h"

namespace chainfire::raft {

namespace {
constexpr char kTransferContext[] = "transfer";

absl::Status ProposalDropped(const char* why) {
  return absl::FailedPreconditionError(absl::StrCat("raft proposal dropped: ", why));
}

MessageType ResponseType(MessageType t) {
  return t == MessageType::kPreVote ? MessageType::kPreVoteResp : MessageType::kVoteResp;
}

}  // namespace

absl::Status Config::Validate() const {
  if (id == kNoNode) return absl::InvalidArgumentError("config: id must not be 0");
  if (std::find(voters.begin(), voters.end(), id) == voters.end()) {
    return absl::InvalidArgumentError("config: voters must include id");
  }
  if (std::find(voters.begin(), voters.end(), kNoNode) != voters.end()) {
    return absl::InvalidArgumentError("config: voter id 0 is reserved");
  }
  if (heartbeat_tick <= 0) return absl::InvalidArgumentError("config: heartbeat_tick must be > 0");
  if (election_tick <= heartbeat_tick) {
    return absl::InvalidArgumentError("config: election_tick must be > heartbeat_tick");
  }
  if (max_inflight_msgs == 0) {
    return absl::InvalidArgumentError("config: max_inflight_msgs must be > 0");
  }
  return absl::OkStatus();
}

Raft::Raft(const Config& config, const LogStorage* storage)
    : id_(config.id),
      config_(config),
      log_(storage, config.max_committed_size_per_ready),
      rng_(MixSeed(config.seed, config.id)) {
  for (NodeId v : config.voters) {
    Progress pr;
    pr.max_inflight = config.max_inflight_msgs;
    prs_.emplace(v, pr);
  }
  const HardState hs = storage->InitialHardState();
  if (!hs.IsEmpty()) {
    CF_CHECK(hs.commit >= log_.committed() && hs.commit <= log_.LastIndex())
        << "hard state commit " << hs.commit << " outside [" << log_.committed() << ", "
        << log_.LastIndex() << "]";
    log_.CommitTo(hs.commit);
    term_ = hs.term;
    vote_ = hs.vote;
  }
  recovering_ = config.recovering || hs.recovering;
  if (config.applied > 0) log_.AppliedTo(config.applied);
  BecomeFollower(term_, kNoNode);
}

// ---------------------------------------------------------------------------------------------
// Role transitions

void Raft::ResetRandomizedElectionTimeout() {
  randomized_election_timeout_ =
      config_.election_tick + static_cast<int>(rng_.Uniform(config_.election_tick));
}

void Raft::Reset(Term term) {
  if (term_ != term) {
    term_ = term;
    vote_ = kNoNode;
  }
  lead_ = kNoNode;
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  ResetRandomizedElectionTimeout();
  AbortLeaderTransfer();
  votes_.clear();
  for (auto& [id, pr] : prs_) {
    pr.Reset(ProgressState::kProbe);
    pr.match = 0;
    pr.next = log_.LastIndex() + 1;
    pr.recent_active = false;
  }
  read_rounds_.clear();
  reads_waiting_for_commit_.clear();
}

void Raft::BecomeFollower(Term term, NodeId lead) {
  Reset(term);
  lead_ = lead;
  role_ = Role::kFollower;
}

void Raft::BecomePreCandidate() {
  CF_CHECK(role_ != Role::kLeader) << "leader cannot become pre-candidate";
  votes_.clear();
  lead_ = kNoNode;
  role_ = Role::kPreCandidate;
}

void Raft::BecomeCandidate() {
  CF_CHECK(role_ != Role::kLeader) << "leader cannot become candidate";
  Reset(term_ + 1);
  vote_ = id_;
  role_ = Role::kCandidate;
}

void Raft::BecomeLeader() {
  CF_CHECK(role_ != Role::kFollower) << "follower cannot become leader without an election";
  Reset(term_);
  lead_ = id_;
  role_ = Role::kLeader;
  Progress& self = prs_.at(id_);
  self.BecomeReplicate();
  // Only durable entries count toward commit: the unstable tail is credited by OnPersisted.
  self.match =
      config_.testing_count_unpersisted_own_entries ? log_.LastIndex() : log_.PersistedLastIndex();
  self.next = self.match + 1;
  self.recent_active = true;
  // The no-op entry of this term, through which entries of earlier terms commit.
  AppendEntries({std::string()});
}

bool Raft::Promotable() const { return prs_.count(id_) > 0 && !recovering_; }

void Raft::Hup(bool transfer) {
  if (role_ == Role::kLeader || !Promotable()) return;
  CampaignFor(config_.pre_vote && !transfer, transfer);
}

void Raft::CampaignFor(bool pre, bool transfer) {
  Term vote_term;
  MessageType type;
  if (pre) {
    BecomePreCandidate();
    type = MessageType::kPreVote;
    vote_term = term_ + 1;  // the pre-vote asks about the next term without entering it
  } else {
    BecomeCandidate();
    type = MessageType::kVote;
    vote_term = term_;
  }
  const int result = Poll(id_, true);
  if (result > 0) {  // single-member cluster
    if (pre) {
      CampaignFor(false, transfer);
    } else {
      BecomeLeader();
    }
    return;
  }
  for (const auto& [peer, pr] : prs_) {
    if (peer == id_) continue;
    Message m;
    m.type = type;
    m.to = peer;
    m.term = vote_term;
    m.index = log_.LastIndex();
    m.log_term = log_.LastTerm();
    if (transfer) m.context = kTransferContext;
    Send(std::move(m));
  }
}

int Raft::Poll(NodeId from, bool granted) {
  votes_.emplace(from, granted);
  size_t yes = 0, no = 0;
  for (const auto& [id, v] : votes_) (v ? yes : no)++;
  if (yes >= Quorum()) return 1;
  if (no > prs_.size() - Quorum()) return -1;
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Time

void Raft::Tick() {
  ++ticks_;
  if (recovering_ && recovery_terms_.size() < Quorum() &&
      recovery_probe_elapsed_++ % config_.election_tick == 0) {
    SendRecoveryProbes();
  }
  if (role_ == Role::kLeader) {
    TickHeartbeat();
  } else {
    TickElection();
  }
}

void Raft::TickElection() {
  ++election_elapsed_;
  if (Promotable() && election_elapsed_ >= randomized_election_timeout_) {
    election_elapsed_ = 0;
    Hup(false);
  }
}

void Raft::TickHeartbeat() {
  ++heartbeat_elapsed_;
  ++election_elapsed_;
  if (election_elapsed_ >= config_.election_tick) {
    election_elapsed_ = 0;
    if (config_.check_quorum && !QuorumActive()) {
      BecomeFollower(term_, kNoNode);  // lost contact with a quorum: step down
      return;
    }
    AbortLeaderTransfer();  // the transfer did not finish within an election timeout
  }
  if (heartbeat_elapsed_ >= config_.heartbeat_tick) {
    heartbeat_elapsed_ = 0;
    BroadcastHeartbeat(std::string());
  }
}

bool Raft::QuorumActive() {
  size_t active = 0;
  for (auto& [id, pr] : prs_) {
    if (id == id_ || (pr.recent_active && !pr.recovering)) ++active;
    if (id != id_) pr.recent_active = false;
  }
  return active >= Quorum();
}

absl::Status Raft::Propose(std::vector<std::string> data) {
  Message m;
  m.type = MessageType::kProp;
  m.from = id_;
  m.entries.reserve(data.size());
  for (std::string& d : data) m.entries.push_back(Entry{0, 0, std::move(d)});
  return Step(std::move(m));
}

// ---------------------------------------------------------------------------------------------
// Step

absl::Status Raft::Step(Message m) {
  // Disk-loss recovery probes are answered whatever the terms, and change no state.
  if (m.type == MessageType::kRecoveryProbe) {
    Message resp;
    resp.type = MessageType::kRecoveryProbeResp;
    resp.to = m.from;
    resp.log_term = term_;
    resp.term = 0;
    Send(std::move(resp));
    return absl::OkStatus();
  }
  if (m.type == MessageType::kRecoveryProbeResp) {
    if (recovering_ && m.from != id_ && prs_.count(m.from)) {
      recovery_terms_[m.from] = std::max(recovery_terms_[m.from], m.log_term);
    }
    MaybeFinishRecovery();
    return absl::OkStatus();
  }
  if (m.term == 0) {
    // local message or a forwarded proposal / read request
  } else if (m.term > term_) {
    if (m.type == MessageType::kVote || m.type == MessageType::kPreVote) {
      const bool force = m.context == kTransferContext;
      const bool in_lease =
          config_.check_quorum && lead_ != kNoNode && election_elapsed_ < config_.election_tick;
      if (!force && in_lease) return absl::OkStatus();  // a live leader exists: ignore
    }
    if (m.type == MessageType::kPreVote) {
      // Never change the term on a pre-vote.
    } else if (m.type == MessageType::kPreVoteResp && !m.reject) {
      // A granted pre-vote carries the future term; the term moves only if we win.
    } else if (m.type == MessageType::kApp || m.type == MessageType::kHeartbeat ||
               m.type == MessageType::kSnap) {
      BecomeFollower(m.term, m.from);
    } else {
      BecomeFollower(m.term, kNoNode);
    }
  } else if (m.term < term_) {
    if ((config_.check_quorum || config_.pre_vote) &&
        (m.type == MessageType::kHeartbeat || m.type == MessageType::kApp)) {
      // A stale leader: tell it the new term so it steps down.
      Message resp;
      resp.type = MessageType::kAppResp;
      resp.to = m.from;
      Send(std::move(resp));
    } else if (m.type == MessageType::kPreVote) {
      Message resp;
      resp.type = MessageType::kPreVoteResp;
      resp.to = m.from;
      resp.reject = true;
      Send(std::move(resp));
    }
    return absl::OkStatus();
  }

  switch (m.type) {
    case MessageType::kVote:
    case MessageType::kPreVote:
      HandleVoteRequest(m);
      return absl::OkStatus();
    default:
      break;
  }
  if (m.type == MessageType::kProp && role_ != Role::kLeader) {
    if (lead_ == kNoNode || role_ != Role::kFollower) return ProposalDropped("no leader");
    m.to = lead_;
    Send(std::move(m));
    return absl::OkStatus();
  }
  if (m.type == MessageType::kProp) {
    if (lead_transferee_ != kNoNode) return ProposalDropped("leadership transfer in progress");
    std::vector<std::string> data;
    for (Entry& e : m.entries) data.push_back(std::move(e.data));
    AppendEntries(std::move(data));
    BroadcastAppend();
    return absl::OkStatus();
  }
  if (m.type == MessageType::kReadIndex && role_ != Role::kLeader) {
    if (lead_ == kNoNode || role_ != Role::kFollower) return ProposalDropped("no leader");
    m.to = lead_;
    Send(std::move(m));
    return absl::OkStatus();
  }
  switch (role_) {
    case Role::kLeader:
      StepLeader(m);
      break;
    case Role::kCandidate:
    case Role::kPreCandidate:
      StepCandidate(m);
      break;
    case Role::kFollower:
      StepFollower(m);
      break;
  }
  return absl::OkStatus();
}

void Raft::HandleVoteRequest(const Message& m) {
  // A member recovering from disk loss may have voted before and forgotten it: no votes.
  const bool can_vote =
      !recovering_ && (vote_ == m.from || (vote_ == kNoNode && lead_ == kNoNode) ||
                       (m.type == MessageType::kPreVote && m.term > term_));
  Message resp;
  resp.type = ResponseType(m.type);
  resp.to = m.from;
  if (can_vote && log_.IsUpToDate(m.index, m.log_term)) {
    // Reply with the request's term: a pre-vote reply is for a term we have not entered.
    resp.term = m.term;
    Send(std::move(resp));
    if (m.type == MessageType::kVote) {
      election_elapsed_ = 0;
      vote_ = m.from;
    }
  } else {
    resp.term = term_;
    resp.reject = true;
    Send(std::move(resp));
  }
}

void Raft::StepCandidate(Message& m) {
  switch (m.type) {
    case MessageType::kApp:
      BecomeFollower(m.term, m.from);
      HandleAppend(m);
      return;
    case MessageType::kHeartbeat:
      BecomeFollower(m.term, m.from);
      HandleHeartbeat(m);
      return;
    case MessageType::kSnap:
      BecomeFollower(m.term, m.from);
      HandleSnapshot(m);
      return;
    case MessageType::kVoteResp:
    case MessageType::kPreVoteResp: {
      const bool mine = (role_ == Role::kPreCandidate) == (m.type == MessageType::kPreVoteResp);
      if (!mine) return;
      const int result = Poll(m.from, !m.reject);
      if (result > 0) {
        if (role_ == Role::kPreCandidate) {
          CampaignFor(false, false);
        } else {
          BecomeLeader();
          BroadcastAppend();
        }
      } else if (result < 0) {
        BecomeFollower(term_, kNoNode);
      }
      return;
    }
    default:
      return;
  }
}

void Raft::StepFollower(Message& m) {
  switch (m.type) {
    case MessageType::kApp:
      election_elapsed_ = 0;
      lead_ = m.from;
      if (recovering_ && recovery_term_ != term_) {
        recovery_term_ = term_;
        recovery_commit_seen_ = m.commit;
      }
      HandleAppend(m);
      MaybeFinishRecovery();
      return;
    case MessageType::kHeartbeat:
      election_elapsed_ = 0;
      lead_ = m.from;
      if (recovering_ && recovery_term_ != term_) {
        recovery_term_ = term_;
        recovery_commit_seen_ = m.commit;
      }
      HandleHeartbeat(m);
      MaybeFinishRecovery();
      return;
    case MessageType::kSnap:
      election_elapsed_ = 0;
      lead_ = m.from;
      HandleSnapshot(m);
      return;
    case MessageType::kTransferLeader:
      if (lead_ == kNoNode) return;
      m.to = lead_;
      Send(std::move(m));
      return;
    case MessageType::kTimeoutNow:
      Hup(true);  // the leader hands over: campaign now, without pre-vote
      return;
    case MessageType::kReadIndexResp:
      read_states.push_back(ReadState{m.index, m.context});
      return;
    default:
      return;
  }
}

void Raft::HandleAppend(Message& m) {
  Message resp;
  resp.type = MessageType::kAppResp;
  resp.to = m.from;
  if (m.index < log_.committed()) {
    resp.index = log_.committed();
    Send(std::move(resp));
    return;
  }
  if (auto last_new = log_.MaybeAppend(m.index, m.log_term, m.commit, std::move(m.entries))) {
    resp.index = *last_new;
    Send(std::move(resp));
    return;
  }
  // Mismatch: hint the leader at the last index that could match its term at m.index.
  const auto [hint_index, hint_term] =
      log_.FindConflictByTerm(std::min(m.index, log_.LastIndex()), m.log_term);
  resp.index = m.index;
  resp.reject = true;
  resp.reject_hint = hint_index;
  resp.log_term = hint_term;
  Send(std::move(resp));
}

void Raft::HandleHeartbeat(const Message& m) {
  log_.CommitTo(std::min(m.commit, log_.LastIndex()));
  Message resp;
  resp.type = MessageType::kHeartbeatResp;
  resp.to = m.from;
  resp.context = m.context;
  Send(std::move(resp));
}

void Raft::HandleSnapshot(const Message& m) {
  Message resp;
  resp.type = MessageType::kAppResp;
  resp.to = m.from;
  const Snapshot& s = *m.snapshot;
  if (s.meta.index <= log_.committed()) {
    resp.index = log_.committed();
  } else if (log_.MatchTerm(s.meta.index, s.meta.term)) {
    log_.CommitTo(s.meta.index);  // we already hold the log it covers
    resp.index = log_.committed();
  } else {
    log_.Restore(s);
    resp.index = log_.LastIndex();
  }
  Send(std::move(resp));
}

// ---------------------------------------------------------------------------------------------
// Recovery after disk loss

void Raft::SendRecoveryProbes() {
  for (const auto& [id, pr] : prs_) {
    if (id == id_ || recovery_terms_.count(id)) continue;
    Message m;
    m.type = MessageType::kRecoveryProbe;
    m.to = id;
    Send(std::move(m));
  }
}

void Raft::MaybeFinishRecovery() {
  // A majority of the others (Quorum() of them; the member itself knows nothing).
  // recovery_term_ is 0 until a leader was heard from (leaders have terms >= 1).
  if (!recovering_ || recovery_term_ == 0 || recovery_term_ != term_ || role_ != Role::kFollower ||
      recovery_terms_.size() < Quorum()) {
    return;
  }
  const Index covered = std::min(log_.committed(), log_.PersistedLastIndex());
  if (covered < recovery_commit_seen_ || log_.TermOrZero(covered) != term_) return;
  Term floor = 0;
  for (const auto& [id, t] : recovery_terms_) floor = std::max(floor, t);
  recovering_ = false;
  recovery_terms_.clear();
  if (floor > term_) {
    // It may have voted in `floor` before the loss: enter it having voted (for itself).
    BecomeFollower(floor, kNoNode);
    vote_ = id_;
  } else if (vote_ == kNoNode) {
    vote_ = id_;  // the same for the current term
  }
}

}  // namespace chainfire::raft
