// The simulation's fake disk and the NodeStorage built on it.
//
// SimDisk is one member's durable medium; it survives the member's crashes. The log is a byte
// string of checksummed records (like a WAL): a write appends bytes at once (the page cache)
// and becomes durable only when its fsync completes after a simulated latency. A crash keeps
// the synced bytes plus a random prefix of the unsynced ones, which may cut the last record in
// half (a torn write); recovery detects the bad checksum and cuts the torn tail. An fsync can
// fail: the member then stops and the outcome of the unsynced bytes is left to the crash.
// Thread-safety: none (the simulation is single-threaded).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>

#include "chainfire/common/random.h"
#include "chainfire/node/raft_node.h"

namespace chainfire::sim {

struct DiskFaults {
  uint64_t min_latency_ms = 1;
  uint64_t max_latency_ms = 3;
  double fsync_failure = 0;    // chance that one fsync fails
  double keep_unsynced = 0.5;  // at a crash, chance that some unsynced bytes survive
  // TEST ONLY bug switch: the vote is not written with the hard state.
  bool testing_drop_vote = false;
  // TEST ONLY bug switch: fsync returns before the data is durable; a crash loses the last
  // synced write as well.
  bool testing_fsync_lies = false;
  // TEST ONLY bug switch (RocksDB runs): after a failed fsync the member carries on, counting
  // its writes as durable.
  bool testing_ignore_fsync_failure = false;
};

class SimDisk {
 public:
  // Bytes that are durable.
  std::string synced;
  // Bytes written but not yet synced, in order.
  std::string unsynced;

  // Where `synced` ended before the latest fsync (what a lying fsync really made durable).
  size_t before_last_sync = 0;

  // Power loss: unsynced bytes are lost, except a random prefix (possibly tearing a record).
  // With `fsync_lies`, the bytes of the latest fsync are lost too.
  void Crash(Random& rng, double keep_unsynced, bool fsync_lies = false);
};

// A NodeStorage over a SimDisk. The LogStorage view is exactly the durable state.
class SimStorage : public node::NodeStorage {
 public:
  // Replays `disk` into the view (cutting a torn tail). Calls `on_durable` for every write
  // that becomes durable, after the view reflects it.
  using DurableHook = std::function<void(const node::PersistRequest&)>;
  SimStorage(SimDisk* disk, const DiskFaults* faults, Random* rng, const uint64_t* now_ms,
             DurableHook on_durable);

  raft::HardState InitialHardState() const override { return view_.InitialHardState(); }
  absl::StatusOr<std::vector<raft::Entry>> Entries(raft::Index lo, raft::Index hi,
                                                   uint64_t max_bytes) const override {
    return view_.Entries(lo, hi, max_bytes);
  }
  absl::StatusOr<raft::Term> TermAt(raft::Index i) const override { return view_.TermAt(i); }
  raft::Index FirstIndex() const override { return view_.FirstIndex(); }
  raft::Index LastIndex() const override { return view_.LastIndex(); }
  absl::StatusOr<raft::Snapshot> GetSnapshot() const override { return view_.GetSnapshot(); }

  void SubmitWrite(node::PersistRequest request) override;
  absl::StatusOr<size_t> PollCompletedWrites() override;
  absl::Status SaveSnapshotAndCompact(raft::Index index, std::string data,
                                      raft::Index compact_to) override;
  absl::Status PersistRecovering() override;

  // Records cut from the tail at recovery (a torn write), for statistics.
  int torn_records_cut() const { return torn_records_cut_; }
  size_t pending() const { return pending_.size(); }

 private:
  struct PendingWrite {
    node::PersistRequest request;
    size_t end_offset;  // in disk_->unsynced after this write
    uint64_t done_at_ms;
    bool fails;
  };
  void ApplyToView(const node::PersistRequest& r);
  // Makes the view's whole state the synced content of the disk.
  void Checkpoint();

  SimDisk* disk_;
  const DiskFaults* faults_;  // owned by the simulation; may change between writes
  Random* rng_;
  const uint64_t* now_ms_;
  DurableHook on_durable_;
  raft::MemoryStorage view_;
  std::deque<PendingWrite> pending_;
  bool failed_ = false;
  int torn_records_cut_ = 0;
};

// Record encoding, exposed for the disk tests.
std::string EncodeRecord(const node::PersistRequest& r);
// Decodes records from `bytes` until the end or the first bad record; sets *valid_bytes.
std::vector<node::PersistRequest> DecodeRecords(const std::string& bytes, size_t* valid_bytes);

}  // namespace chainfire::sim
