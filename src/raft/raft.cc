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

bool IsEarlyType(MessageType t) {
  return t == MessageType::kApp || t == MessageType::kHeartbeat || t == MessageType::kSnap;
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

// ---------------------------------------------------------------------------------------------
// Sending

void Raft::Send(Message m) {
  m.from = id_;
  m.recovering = recovering_;
  if (m.term == 0 && m.type != MessageType::kProp && m.type != MessageType::kReadIndex &&
      m.type != MessageType::kRecoveryProbe && m.type != MessageType::kRecoveryProbeResp) {
    m.term = term_;
  }
  if (role_ == Role::kLeader && IsEarlyType(m.type)) {
    early_msgs.push_back(std::move(m));
  } else {
    msgs.push_back(std::move(m));
  }
}

bool Raft::MaybeSendAppend(NodeId to, bool send_if_empty) {
  Progress& pr = prs_.at(to);
  if (pr.IsPaused()) return false;
  const Index prev_index = pr.next - 1;
  auto prev_term = log_.TermAt(prev_index);
  absl::StatusOr<std::vector<Entry>> entries = std::vector<Entry>{};
  if (prev_term.ok() && pr.next <= log_.LastIndex()) {
    entries = log_.Slice(pr.next, log_.LastIndex() + 1, config_.max_size_per_msg);
  }
  if (!prev_term.ok() || !entries.ok()) {
    // The entries the follower needs are compacted: send a snapshot instead.
    if (!pr.recent_active) return false;
    auto snapshot = log_.GetSnapshot();
    if (!snapshot.ok()) {
      CF_CHECK(IsSnapshotTemporarilyUnavailable(snapshot.status()))
          << "snapshot: " << snapshot.status().ToString();
      return false;
    }
    CF_CHECK(!snapshot->IsEmpty()) << "need a snapshot but storage has none";
    pr.BecomeSnapshot(snapshot->meta.index);
    pr.snapshot_sent_tick = ticks_;
    Message m;
    m.type = MessageType::kSnap;
    m.to = to;
    m.snapshot = std::move(*snapshot);
    Send(std::move(m));
    return true;
  }
  if (entries->empty() && !send_if_empty) return false;
  Message m;
  m.type = MessageType::kApp;
  m.to = to;
  m.index = prev_index;
  m.log_term = *prev_term;
  m.commit = log_.committed();
  m.entries = std::move(*entries);
  if (!m.entries.empty() && pr.state == ProgressState::kReplicate) {
    const Index last = m.entries.back().index;
    pr.next = last + 1;
    pr.inflight.push_back(last);
  } else if (pr.state == ProgressState::kProbe) {
    pr.probe_sent = true;
  }
  Send(std::move(m));
  return true;
}

void Raft::BroadcastAppend() {
  for (const auto& [peer, pr] : prs_) {
    if (peer != id_) MaybeSendAppend(peer, true);
  }
}

void Raft::BroadcastHeartbeat(const std::string& context) {
  for (const auto& [peer, pr] : prs_) {
    if (peer == id_) continue;
    Message m;
    m.type = MessageType::kHeartbeat;
    m.to = peer;
    m.commit = std::min(pr.match, log_.committed());
    m.context = context;
    Send(std::move(m));
  }
}

// ---------------------------------------------------------------------------------------------
// Proposals and commit

void Raft::AppendEntries(std::vector<std::string> data) {
  std::vector<Entry> entries;
  entries.reserve(data.size());
  Index index = log_.LastIndex();
  for (std::string& d : data) entries.push_back(Entry{term_, ++index, std::move(d)});
  const Index last = log_.Append(std::move(entries));
  if (config_.testing_count_unpersisted_own_entries) {
    prs_.at(id_).MaybeUpdate(last);
    MaybeCommit();
  }
}

bool Raft::MaybeCommit() {
  std::vector<Index> matches;
  for (const auto& [id, pr] : prs_) matches.push_back(pr.recovering ? 0 : pr.match);
  std::sort(matches.begin(), matches.end(), std::greater<Index>());
  const Index quorum_index = matches[Quorum() - 1];
  // Only an entry of the current term is committed by counting replicas (Raft paper 5.4.2).
  if (!log_.MaybeCommit(quorum_index, term_)) return false;
  ReleaseReadsWaitingForCommit();
  return true;
}

bool Raft::CommittedInCurrentTerm() const { return log_.TermOrZero(log_.committed()) == term_; }

void Raft::OnPersisted(Index last, Term last_term) {
  if (role_ != Role::kLeader || !log_.MatchTerm(last, last_term)) return;
  if (prs_.at(id_).MaybeUpdate(last) && MaybeCommit()) BroadcastAppend();
}

absl::Status Raft::Propose(std::string data) {
  Message m;
  m.type = MessageType::kProp;
  m.from = id_;
  m.entries.push_back(Entry{0, 0, std::move(data)});
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

void Raft::StepLeader(Message& m) {
  auto it = prs_.find(m.from);
  switch (m.type) {
    case MessageType::kReadIndex:
      if (!CommittedInCurrentTerm()) {
        // A new leader does not know the commit index until an entry of its term commits.
        reads_waiting_for_commit_.push_back({m.from, m.context, 0});
      } else {
        StartReadRound({{m.from, m.context, log_.committed()}});
      }
      return;
    case MessageType::kAppResp:
      if (it != prs_.end()) HandleAppendResponse(m);
      return;
    case MessageType::kHeartbeatResp:
      if (it != prs_.end()) HandleHeartbeatResponse(m);
      return;
    case MessageType::kTransferLeader:
      if (it != prs_.end()) HandleTransferLeader(m.from);
      return;
    default:
      return;  // stale vote replies etc.
  }
}

void Raft::NoteRecovering(Progress& pr, const Message& m) {
  if (m.recovering && !pr.recovering) {
    // What it acknowledged before losing its disk is gone: start over from its real log.
    pr.recovering = true;
    pr.match = 0;
    pr.BecomeProbe();
    pr.next = std::max<Index>(1, log_.FirstIndex());
  } else if (!m.recovering) {
    pr.recovering = false;
  }
}

void Raft::HandleAppendResponse(const Message& m) {
  Progress& pr = prs_.at(m.from);
  NoteRecovering(pr, m);
  pr.recent_active = true;
  if (m.reject) {
    Index next_probe = m.reject_hint;
    if (m.log_term > 0) next_probe = log_.FindConflictByTerm(m.reject_hint, m.log_term).first;
    if (pr.MaybeDecrTo(m.index, next_probe)) {
      if (pr.state == ProgressState::kReplicate) pr.BecomeProbe();
      MaybeSendAppend(m.from, true);
    }
    return;
  }
  const bool was_paused = pr.IsPaused();
  if (!pr.MaybeUpdate(m.index)) return;
  switch (pr.state) {
    case ProgressState::kProbe:
      pr.BecomeReplicate();
      break;
    case ProgressState::kSnapshot:
      if (pr.match + 1 >= log_.FirstIndex()) {
        pr.BecomeProbe();
        pr.BecomeReplicate();
      }
      break;
    case ProgressState::kReplicate:
      pr.FreeInflightTo(m.index);
      break;
  }
  if (MaybeCommit()) {
    BroadcastAppend();
  } else if (was_paused) {
    MaybeSendAppend(m.from, true);
  }
  while (MaybeSendAppend(m.from, false)) {
  }
  if (m.from == lead_transferee_ && pr.match == log_.LastIndex()) {
    Message t;
    t.type = MessageType::kTimeoutNow;
    t.to = m.from;
    Send(std::move(t));
  }
}

void Raft::HandleHeartbeatResponse(const Message& m) {
  Progress& pr = prs_.at(m.from);
  NoteRecovering(pr, m);
  pr.recent_active = true;
  pr.probe_sent = false;
  if (pr.state == ProgressState::kReplicate && pr.InflightFull()) pr.inflight.pop_front();
  if (pr.state == ProgressState::kSnapshot &&
      ticks_ - pr.snapshot_sent_tick >= static_cast<uint64_t>(config_.election_tick)) {
    pr.BecomeProbe();  // the snapshot was probably lost: start over
  }
  if (pr.match < log_.LastIndex()) MaybeSendAppend(m.from, true);
  if (!m.context.empty() && !pr.recovering) AckReadRound(m.from, m.context);
}

void Raft::HandleTransferLeader(NodeId target) {
  if (target == id_ || prs_.at(target).recovering) return;
  if (lead_transferee_ == target) return;  // already in progress
  AbortLeaderTransfer();
  lead_transferee_ = target;
  election_elapsed_ = 0;  // the transfer must finish within an election timeout
  if (prs_.at(target).match == log_.LastIndex()) {
    Message t;
    t.type = MessageType::kTimeoutNow;
    t.to = target;
    Send(std::move(t));
  } else {
    MaybeSendAppend(target, true);
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

// ---------------------------------------------------------------------------------------------
// Leader transfer and transport reports

void Raft::TransferLeader(NodeId target) {
  if (prs_.count(target) == 0) return;
  if (role_ == Role::kLeader) {
    HandleTransferLeader(target);
  } else if (lead_ != kNoNode) {
    Message m;
    m.type = MessageType::kTransferLeader;
    m.from = target;
    m.to = lead_;
    m.term = term_;
    msgs.push_back(std::move(m));
  }
}

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
