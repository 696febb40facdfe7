// The production RaftLogStore on RocksDB's in-memory Env, driven by the simulation's clock.
//
// Writes queue in the store (manual mode) and are performed, synced, when their simulated
// latency has passed, so the run stays deterministic. The Env's file system is the
// simulation's FaultFileSystem: a crash keeps only synced bytes (and by chance a torn prefix
// of the rest), a failed fsync is a real failed WAL sync that the store must report (the
// member then stops), and bit flips at rest must make the next open fail.
// Thread-safety: none (the simulation is single-threaded).
#pragma once

#include <deque>
#include <memory>

#include "chainfire/common/random.h"
#include "chainfire/storage/raft_log_store.h"
#include "fault_fs.h"
#include "sim_disk.h"

namespace chainfire::sim {

class RocksSimStorage : public node::NodeStorage {
 public:
  using DurableHook = SimStorage::DurableHook;
  static absl::StatusOr<std::unique_ptr<RocksSimStorage>> Open(
      rocksdb::Env* env, FaultFileSystem* fs, const std::string& dir, const DiskFaults* faults,
      Random* rng, const uint64_t* now_ms, DurableHook on_durable);

  raft::HardState InitialHardState() const override { return log_->InitialHardState(); }
  absl::StatusOr<std::vector<raft::Entry>> Entries(raft::Index lo, raft::Index hi,
                                                   uint64_t max_bytes) const override {
    return log_->Entries(lo, hi, max_bytes);
  }
  absl::StatusOr<raft::Term> TermAt(raft::Index i) const override { return log_->TermAt(i); }
  raft::Index FirstIndex() const override { return log_->FirstIndex(); }
  raft::Index LastIndex() const override { return log_->LastIndex(); }
  absl::StatusOr<raft::Snapshot> GetSnapshot() const override { return log_->GetSnapshot(); }

  // The member's one RocksDB (the KvStore opens its columns on it too).
  storage::Engine* engine() const { return engine_.get(); }

  void SubmitWrite(node::PersistRequest request) override;
  absl::StatusOr<size_t> PollCompletedWrites() override;
  absl::Status SaveSnapshotAndCompact(raft::Index index, std::string data,
                                      raft::Index compact_to) override {
    return log_->SaveSnapshotAndCompact(index, std::move(data), compact_to);
  }
  absl::Status PersistRecovering() override { return log_->PersistRecovering(); }

 private:
  struct Pending {
    node::PersistRequest request;  // a copy, for the checkers once durable
    uint64_t done_at_ms;
    bool fails;
  };
  const DiskFaults* faults_ = nullptr;
  FaultFileSystem* fs_ = nullptr;
  Random* rng_ = nullptr;
  const uint64_t* now_ms_ = nullptr;
  DurableHook on_durable_;
  std::unique_ptr<storage::Engine> engine_;
  std::unique_ptr<storage::RaftLogStore> log_;
  std::deque<Pending> pending_;
  bool failed_ = false;
  bool ignoring_ = false;  // testing_ignore_fsync_failure: a sync failed and was ignored
};

}  // namespace chainfire::sim
