// The production RaftLogStore on RocksDB's in-memory Env, driven by the simulation's clock.
//
// Writes queue in the store (manual mode) and are performed, synced, when their simulated
// latency has passed, so the run stays deterministic. A crash drops the queued writes (they
// never reached the disk) and reopens the database from the in-memory Env, which keeps what was
// written. Torn tails are covered by SimDisk seeds and by the storage tests on a real disk.
// Thread-safety: none (the simulation is single-threaded).
#pragma once

#include <deque>
#include <memory>

#include "chainfire/common/random.h"
#include "chainfire/storage/raft_log_store.h"
#include "sim_disk.h"

namespace chainfire::sim {

class RocksSimStorage : public node::NodeStorage {
 public:
  using DurableHook = SimStorage::DurableHook;
  static absl::StatusOr<std::unique_ptr<RocksSimStorage>> Open(rocksdb::Env* env,
                                                               const std::string& dir,
                                                               const DiskFaults* faults,
                                                               Random* rng, const uint64_t* now_ms,
                                                               DurableHook on_durable);

  raft::HardState InitialHardState() const override { return log_->InitialHardState(); }
  absl::StatusOr<std::vector<raft::Entry>> Entries(raft::Index lo, raft::Index hi,
                                                   uint64_t max_bytes) const override {
    return log_->Entries(lo, hi, max_bytes);
  }
  absl::StatusOr<raft::Term> TermAt(raft::Index i) const override { return log_->TermAt(i); }
  raft::Index FirstIndex() const override { return log_->FirstIndex(); }
  raft::Index LastIndex() const override { return log_->LastIndex(); }
  absl::StatusOr<raft::Snapshot> GetSnapshot() const override { return log_->GetSnapshot(); }

  void SubmitWrite(node::PersistRequest request) override;
  absl::StatusOr<size_t> PollCompletedWrites() override;
  absl::Status SaveSnapshotAndCompact(raft::Index index, std::string data,
                                      raft::Index compact_to) override {
    return log_->SaveSnapshotAndCompact(index, std::move(data), compact_to);
  }

 private:
  struct Pending {
    node::PersistRequest request;  // a copy, for the checkers once durable
    uint64_t done_at_ms;
    bool fails;
  };
  const DiskFaults* faults_ = nullptr;
  Random* rng_ = nullptr;
  const uint64_t* now_ms_ = nullptr;
  DurableHook on_durable_;
  std::unique_ptr<storage::Engine> engine_;
  std::unique_ptr<storage::RaftLogStore> log_;
  std::deque<Pending> pending_;
  bool failed_ = false;
};

}  // namespace chainfire::sim
