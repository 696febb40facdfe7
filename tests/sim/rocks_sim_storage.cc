#include "rocks_sim_storage.h"

namespace chainfire::sim {

absl::StatusOr<std::unique_ptr<RocksSimStorage>> RocksSimStorage::Open(
    rocksdb::Env* env, FaultFileSystem* fs, const std::string& dir, const DiskFaults* faults,
    Random* rng, const uint64_t* now_ms, DurableHook on_durable) {
  auto s = std::unique_ptr<RocksSimStorage>(new RocksSimStorage());
  s->faults_ = faults;
  s->fs_ = fs;
  s->rng_ = rng;
  s->now_ms_ = now_ms;
  s->on_durable_ = std::move(on_durable);
  // No RocksDB compaction on its own threads: the run must replay exactly.
  auto engine = storage::Engine::Open(dir, env, /*background_compaction=*/false);
  if (!engine.ok()) return engine.status();
  s->engine_ = std::move(*engine);
  auto log = storage::RaftLogStore::Open(s->engine_.get(), nullptr,
                                         storage::RaftLogStore::WriteMode::kManual);
  if (!log.ok()) return log.status();
  s->log_ = std::move(*log);
  return s;
}

void RocksSimStorage::SubmitWrite(node::PersistRequest request) {
  if (faults_->testing_drop_vote && request.hard_state) request.hard_state->vote = raft::kNoNode;
  uint64_t done = *now_ms_ + rng_->Range(faults_->min_latency_ms, faults_->max_latency_ms);
  if (!pending_.empty()) done = std::max(done, pending_.back().done_at_ms);
  // Only a write that is fsynced can fail its fsync (a commit-only write is not synced); the
  // draw is made either way so the random sequence does not depend on it.
  const bool fails = rng_->Chance(faults_->fsync_failure) && request.sync;
  pending_.push_back(Pending{request, done, fails});
  log_->SubmitWrite(std::move(request));
}

absl::StatusOr<size_t> RocksSimStorage::PollCompletedWrites() {
  if (failed_) return absl::DataLossError("fsync failed earlier");
  size_t due = 0;
  bool fails = false;
  for (const Pending& p : pending_) {
    if (p.done_at_ms > *now_ms_) break;
    ++due;
    if (p.fails) {
      fails = true;
      break;
    }
  }
  if (due == 0) return size_t{0};
  if (fails) fs_->FailNextSync();  // the WAL sync of this very batch fails
  log_->FlushQueued(due);          // the real code path: one WriteBatch, synced unless commit-only
  auto n = log_->PollCompletedWrites();
  if (faults_->testing_ignore_fsync_failure && (fails || ignoring_)) {
    ignoring_ = true;  // the bug: whatever the store says, these writes count as durable
    for (size_t i = 0; i < due; ++i) {
      if (on_durable_) on_durable_(pending_.front().request);
      pending_.pop_front();
    }
    return due;
  }
  if (fails) {
    failed_ = true;
    if (n.ok()) {
      return absl::InternalError(
          "VIOLATION: the WAL fsync failed but the store reported the write durable");
    }
    return n.status();
  }
  if (!n.ok()) return n.status();
  for (size_t i = 0; i < *n; ++i) {
    if (on_durable_) on_durable_(pending_.front().request);
    pending_.pop_front();
  }
  return *n;
}

}  // namespace chainfire::sim
