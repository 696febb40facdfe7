// Raft: sending, the leader's replication (appends, heartbeats, commit, acknowledgements)
// and leader transfer. The rest of the state machine is in raft.cc, ReadIndex in raft_reads.cc.
#include <algorithm>

#include "chainfire/common/check.h"
#include "raft.h"

namespace chainfire::raft {

namespace {
// A leader's appends, heartbeats and snapshots may go out before its own write is durable.
bool IsEarlyType(MessageType t) {
  return t == MessageType::kApp || t == MessageType::kHeartbeat || t == MessageType::kSnap;
}
}  // namespace

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
// Appending and commit

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

// ---------------------------------------------------------------------------------------------
// The leader's side of replication

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

// ---------------------------------------------------------------------------------------------
// Leader transfer

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

}  // namespace chainfire::raft
