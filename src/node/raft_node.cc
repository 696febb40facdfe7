#include "chainfire/node/raft_node.h"

#include <algorithm>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "chainfire/common/check.h"

namespace chainfire::node {

absl::StatusOr<std::unique_ptr<RaftNode>> RaftNode::Create(const raft::Config& config,
                                                           const NodeOptions& options,
                                                           NodeStorage* storage,
                                                           Transport* transport, Application* app) {
  raft::Config cfg = config;
  if (cfg.recovering && !storage->InitialHardState().recovering) {
    // Found by the simulation: a wiped member that crashed before its first write restarted
    // as a member with an empty log, not in recovery, and voted.
    if (absl::Status s = storage->PersistRecovering(); !s.ok()) return s;
  }
  // An application without durable state restarts from the latest snapshot.
  auto snapshot = storage->GetSnapshot();
  if (!snapshot.ok()) return snapshot.status();
  if (!snapshot->IsEmpty() && cfg.applied < snapshot->meta.index) {
    app->RestoreSnapshot(*snapshot);
    cfg.applied = snapshot->meta.index;
  }
  auto raw = raft::RawNode::Create(cfg, storage);
  if (!raw.ok()) return raw.status();
  auto node = std::unique_ptr<RaftNode>(
      new RaftNode(std::move(*raw), options, storage, transport, app, cfg.applied));
  node->read_nonce_ = cfg.seed;
  node->last_hard_state_ = storage->InitialHardState();
  node->last_snapshot_ = snapshot->meta.index;
  return node;
}

RaftNode::RaftNode(std::unique_ptr<raft::RawNode> raw, const NodeOptions& options,
                   NodeStorage* storage, Transport* transport, Application* app,
                   raft::Index applied)
    : raw_(std::move(raw)),
      options_(options),
      storage_(storage),
      transport_(transport),
      app_(app),
      applied_(applied) {}

size_t RaftNode::writes_in_flight() const {
  size_t n = 0;
  for (const Pending& p : pipeline_) n += (p.ready.MustPersist() && !p.write_done) ? 1 : 0;
  return n;
}

void RaftNode::Tick() {
  ++ticks_;
  raw_->Tick();
  for (auto it = read_batches_.begin(); it != read_batches_.end();) {
    if (!it->second.index_known &&
        ticks_ - it->second.started_tick >= static_cast<uint64_t>(options_.read_timeout_ticks)) {
      for (uint64_t id : it->second.reads) app_->OnReadFailed(id);
      it = read_batches_.erase(it);
    } else {
      ++it;
    }
  }
}

void RaftNode::Read(uint64_t read_id) { unbatched_reads_.push_back(read_id); }

void RaftNode::Stop(absl::Status reason) {
  stopped_ = true;
  stop_reason_ = std::move(reason);
}

bool RaftNode::PumpOnce() {
  if (stopped_) return false;
  absl::StatusOr<size_t> done = storage_->PollCompletedWrites();
  if (!done.ok()) {
    // A failed fsync: what we handed out may not be durable. Stop; never continue.
    Stop(done.status());
    return true;
  }
  for (Pending& p : pipeline_) {
    if (*done == 0) break;
    if (p.must_persist && !p.write_done) {
      p.write_done = true;
      --*done;
    }
  }
  CF_CHECK(*done == 0) << "storage reported more completed writes than were submitted";
  if (!pipeline_.empty() && pipeline_.front().write_done) {
    Pending p = std::move(pipeline_.front());
    pipeline_.pop_front();
    Finish(p.ready, p.progress);
    return true;
  }
  bool worked = false;
  if (!unbatched_reads_.empty()) {
    worked = true;
    const uint64_t batch_id = next_batch_++;
    absl::Status s = raw_->ReadIndex(absl::StrCat(read_nonce_, ":", batch_id));
    if (!s.ok()) {
      for (uint64_t id : unbatched_reads_) app_->OnReadFailed(id);
    } else {
      ReadBatch& batch = read_batches_[batch_id];
      batch.reads = std::move(unbatched_reads_);
      batch.started_tick = ticks_;
    }
    unbatched_reads_.clear();
  }
  if (pipeline_.size() >= options_.max_pipeline || !raw_->HasReady()) return worked;
  raft::Ready rd = raw_->GetReady();
  if (rd.soft_state) {
    if (rd.soft_state->lead != lead_) {
      lead_ = rd.soft_state->lead;
      FailAllReads();  // their ReadIndex requests may never be answered now
    }
    app_->OnSoftStateChange(*rd.soft_state);
  }
  for (raft::Message& m : rd.early_messages) transport_->Send(std::move(m));
  if (!rd.early_messages.empty()) transport_->Flush();
  rd.early_messages.clear();
  const bool must_persist = rd.MustPersist();
  const raft::ReadyProgress progress = rd.Progress();
  if (must_persist) {
    PersistRequest req;
    req.snapshot = rd.snapshot;  // kept in rd too: Finish applies it
    req.entries = std::move(rd.entries);
    rd.entries.clear();
    req.hard_state = rd.hard_state;
    req.sync = !req.entries.empty() || req.snapshot.has_value() ||
               (rd.hard_state && (rd.hard_state->term != last_hard_state_.term ||
                                  rd.hard_state->vote != last_hard_state_.vote ||
                                  rd.hard_state->recovering != last_hard_state_.recovering));
    if (rd.hard_state) last_hard_state_ = *rd.hard_state;
    storage_->SubmitWrite(std::move(req));
  }
  pipeline_.push_back(Pending{std::move(rd), progress, must_persist, !must_persist});
  return true;
}

void RaftNode::Finish(raft::Ready& rd, const raft::ReadyProgress& progress) {
  for (raft::Message& m : rd.messages) transport_->Send(std::move(m));
  if (!rd.messages.empty()) transport_->Flush();
  rd.messages.clear();
  if (rd.snapshot) {
    app_->RestoreSnapshot(*rd.snapshot);
    applied_ = rd.snapshot->meta.index;
    last_snapshot_ = rd.snapshot->meta.index;
  }
  for (const raft::Entry& e : rd.committed_entries) {
    if (e.index <= applied_) continue;  // already covered by a snapshot
    CF_CHECK(e.index == applied_ + 1) << "apply gap: applied " << applied_ << ", next " << e.index;
    app_->Apply(e);
    applied_ = e.index;
  }
  if (!rd.committed_entries.empty()) app_->OnAppliedBatch();
  for (const raft::ReadState& rs : rd.read_states) {
    // Answers addressed to an earlier incarnation of this node carry another nonce: a stale
    // index must never complete a new read.
    const std::string prefix = absl::StrCat(read_nonce_, ":");
    uint64_t batch_id = 0;
    if (!absl::StartsWith(rs.context, prefix) ||
        !absl::SimpleAtoi(rs.context.substr(prefix.size()), &batch_id)) {
      continue;
    }
    auto it = read_batches_.find(batch_id);
    if (it == read_batches_.end()) continue;  // already failed
    it->second.index = rs.index;
    it->second.index_known = true;
  }
  raw_->Advance(progress);
  ServeReadyReads();
  MaybeSnapshot();
}

void RaftNode::ServeReadyReads() {
  for (auto it = read_batches_.begin(); it != read_batches_.end();) {
    if (it->second.index_known && it->second.index <= applied_) {
      for (uint64_t id : it->second.reads) app_->OnReadReady(id);
      it = read_batches_.erase(it);
    } else {
      ++it;
    }
  }
}

void RaftNode::FailAllReads() {
  for (auto it = read_batches_.begin(); it != read_batches_.end();) {
    if (!it->second.index_known) {
      for (uint64_t id : it->second.reads) app_->OnReadFailed(id);
      it = read_batches_.erase(it);
    } else {
      ++it;
    }
  }
}

void RaftNode::MaybeSnapshot() {
  if (options_.snapshot_every == 0 || applied_ < last_snapshot_ + options_.snapshot_every) return;
  const raft::Index compact_to =
      applied_ > options_.compaction_margin ? applied_ - options_.compaction_margin : 0;
  absl::Status s = storage_->SaveSnapshotAndCompact(applied_, app_->TakeSnapshot(), compact_to);
  if (!s.ok()) {
    Stop(s);
    return;
  }
  last_snapshot_ = applied_;
}

}  // namespace chainfire::node
