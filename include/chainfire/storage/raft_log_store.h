// RaftLogStore: the durable Raft log and hard state of a member, on the Engine's raft_log and
// raft_state column families. Implements node::NodeStorage.
//
// Where writes happen (WriteMode): kWriterThread writes a request on the submitting thread
// when the writer thread is idle and the last fsync took under 10 ms (no hand-off: the
// common case, as etcd's raft loop writes its own WAL), and otherwise queues it for a writer
// thread of its own, which group-commits (every PersistRequest queued while the previous
// fsync ran goes into the next single WriteBatch, written with sync), so a slow disk does not
// stall the submitting loop; kManual (the simulation) writes queued requests only when
// FlushQueued is called. In both modes a write becomes
// visible through LogStorage (LastIndex etc.) and is counted by PollCompletedWrites only after
// its fsync returned. A failed write is reported by PollCompletedWrites and nothing later
// counts as durable.
//
// Record formats: storage/raft_format.h.
// Thread-safety: LogStorage methods and NodeStorage methods are called from the node's loop
// thread; the writer thread is internal. The newest durable entries are also kept in memory
// (a bounded tail) and served from there. `on_write_done` runs on the thread that wrote. In
// manual mode there is no writer thread: FlushQueued performs queued writes on the caller's
// thread, deterministically.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "chainfire/node/raft_node.h"
#include "chainfire/storage/engine.h"

namespace chainfire::storage {

class RaftLogStore : public node::NodeStorage {
 public:
  enum class WriteMode { kWriterThread, kManual };
  // Loads the durable state and checks it (commit <= last index). `on_write_done` is called
  // after each group of writes becomes durable (to wake the node's loop).
  static absl::StatusOr<std::unique_ptr<RaftLogStore>> Open(
      Engine* engine, std::function<void()> on_write_done,
      WriteMode mode = WriteMode::kWriterThread);
  ~RaftLogStore() override;

  raft::HardState InitialHardState() const override;
  absl::StatusOr<std::vector<raft::Entry>> Entries(raft::Index lo, raft::Index hi,
                                                   uint64_t max_bytes) const override;
  absl::StatusOr<raft::Term> TermAt(raft::Index index) const override;
  raft::Index FirstIndex() const override;
  raft::Index LastIndex() const override;
  absl::StatusOr<raft::Snapshot> GetSnapshot() const override;

  void SubmitWrite(node::PersistRequest request) override;
  absl::StatusOr<size_t> PollCompletedWrites() override;
  absl::Status SaveSnapshotAndCompact(raft::Index index, std::string data,
                                      raft::Index compact_to) override;
  absl::Status PersistRecovering() override;

  // Adds to `batch` the records of a log that starts after a snapshot at (index, term), with
  // that index committed: how a restored data dir starts, so its state (which no log entry
  // produced) reaches a member that rebuilds from the log only by a snapshot.
  static void AddInitialSnapshot(Engine* engine, rocksdb::WriteBatch* batch, raft::Index index,
                                 raft::Term term);

  // kManual only: performs up to `max_writes` queued writes as one synced batch.
  void FlushQueued(size_t max_writes);
  size_t queued() const;

  // Number of fsyncs performed and writes they covered (group-commit effectiveness).
  uint64_t syncs() const;
  uint64_t writes() const;

 private:
  explicit RaftLogStore(Engine* engine) : engine_(engine) {}
  void WriterLoop();
  // Writes `batch` as one WriteBatch (synced unless no request asks for it), publishes the
  // result and clears writing_; false after a failure.
  bool WriteGroup(std::deque<node::PersistRequest> batch);

  Engine* engine_;
  std::function<void()> on_write_done_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<node::PersistRequest> queue_;  // guarded by mu_
  bool stopping_ = false;                   // guarded by mu_
  bool writing_ = false;                    // guarded by mu_: a WriteGroup is running
  bool last_sync_fast_ = true;              // guarded by mu_: see SubmitWrite
  size_t completed_ = 0;                    // guarded by mu_: writes durable, not yet polled
  absl::Status failure_;                    // guarded by mu_
  raft::HardState hard_state_;              // guarded by mu_: durable
  raft::Index first_index_ = 1;             // guarded by mu_
  raft::Index last_index_ = 0;              // guarded by mu_: durable
  raft::SnapshotMeta compacted_;            // guarded by mu_
  raft::Snapshot snapshot_;                 // guarded by mu_
  uint64_t syncs_ = 0, writes_ = 0;         // guarded by mu_
  // The newest durable entries (contiguous, ending at last_index_; may be empty), so the
  // leader's replication and term lookups rarely read RocksDB. Bounded by kTailBytes.
  std::deque<raft::Entry> tail_;  // guarded by mu_
  size_t tail_bytes_ = 0;         // guarded by mu_
  // Appends `entries` (durable now) to tail_, replacing any overlapping suffix. Needs mu_.
  void AddToTail(std::vector<raft::Entry> entries);
  void DropTailThrough(raft::Index index);  // needs mu_
  raft::Index written_last_ = 0;  // whoever holds writing_ (or kManual's caller): last written
  std::thread writer_;
};

}  // namespace chainfire::storage
