// RaftNode: the driver that runs a RawNode against durable storage, a transport and the
// application, one step at a time. Production runs PumpOnce() on one thread; the simulation
// runs many nodes' PumpOnce() on one thread with fake storage, network and time.
//
// Pipeline (see RawNode for the rules): a Ready is taken, its early messages are sent and its
// write is submitted; further Readies may be taken while writes are in flight (their writes
// queue behind); when a Ready's write is durable its messages are sent, its snapshot and
// committed entries applied, its read states served, and it is advanced. A failed write stops
// the node for good: it never carries on as if the write were durable.
//
// Thread-safety: none. Every method must be called from the thread that owns the node.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "chainfire/raft/raw_node.h"

namespace chainfire::node {

// What one Ready asks storage to make durable, in this order: snapshot, entries, hard state.
struct PersistRequest {
  std::optional<raft::Snapshot> snapshot;
  std::vector<raft::Entry> entries;
  std::optional<raft::HardState> hard_state;
  // False when the request only moves the commit index (no entries, no snapshot, the same term,
  // vote and recovery flag): it is written but need not be fsynced, as etcd's raft.MustSync.
  // A crash may then lose it; the commit index only goes back (it is learned again from the
  // leader, and entries up to the store's applied index are skipped when applied again).
  bool sync = true;
};

// Durable storage behind a node: the read-only LogStorage the core reads, plus an ordered
// asynchronous write queue.
class NodeStorage : public raft::LogStorage {
 public:
  // Queues `request`; writes complete in submission order, durable unless `request.sync` is
  // false (then only written; a later synced write makes it durable too).
  virtual void SubmitWrite(PersistRequest request) = 0;
  // Returns how many submitted writes have become durable since the last call (and are now
  // visible through LogStorage), or the error of the first failed one. After an error no
  // later write counts as durable.
  virtual absl::StatusOr<size_t> PollCompletedWrites() = 0;
  // Durably records a snapshot of the application at `index` (<= the last applied index), then
  // drops log entries up to `compact_to` (<= index). Returns the error if it could not be made
  // durable; the node then stops.
  virtual absl::Status SaveSnapshotAndCompact(raft::Index index, std::string data,
                                              raft::Index compact_to) = 0;
  // Durably sets the hard state's disk-loss recovery flag at once, before the node runs (no
  // write may be queued), so that a crash before the node's first write cannot make a member
  // that lost its disk forget it and vote with a forgotten log.
  virtual absl::Status PersistRecovering() = 0;
};

// Sends messages to other members; best effort (messages may be lost). Send may hold messages
// until the next Flush, so that one group of sends leaves as one write per peer; RaftNode calls
// Flush after each group.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual void Send(raft::Message message) = 0;
  virtual void Flush() {}
};

// The replicated state machine and the owner's callbacks.
class Application {
 public:
  virtual ~Application() = default;
  // Applies one committed entry (empty data: a leader's no-op). Called in index order, only
  // after the entry is durable locally.
  virtual void Apply(const raft::Entry& entry) = 0;
  // Called after the Apply calls of one Ready's committed entries, before any read waiting for
  // them is served or a snapshot is taken: an application that batches its applies makes them
  // visible here.
  virtual void OnAppliedBatch() {}
  // Replaces the whole state with a snapshot's.
  virtual void RestoreSnapshot(const raft::Snapshot& snapshot) = 0;
  // Serialises the current state (as of the last applied entry).
  virtual std::string TakeSnapshot() = 0;
  // A linearizable read registered with RaftNode::Read may now be served from local state.
  virtual void OnReadReady(uint64_t read_id) = 0;
  // The read could not be confirmed (no leader, leader changed); the caller may retry.
  virtual void OnReadFailed(uint64_t read_id) = 0;
  // Leader or role changed.
  virtual void OnSoftStateChange(const raft::SoftState& state) {}
};

struct NodeOptions {
  // Take a snapshot and compact the log every this many applied entries (0: never).
  uint64_t snapshot_every = 0;
  // Keep this many entries behind the snapshot so slightly lagging followers need no snapshot.
  uint64_t compaction_margin = 0;
  // Readies whose writes may be in flight at once.
  size_t max_pipeline = 8;
  // A read batch whose read index has not arrived after this many ticks fails.
  int read_timeout_ticks = 20;
};

class RaftNode {
 public:
  // `storage`, `transport` and `app` must outlive the node.
  static absl::StatusOr<std::unique_ptr<RaftNode>> Create(const raft::Config& config,
                                                          const NodeOptions& options,
                                                          NodeStorage* storage,
                                                          Transport* transport, Application* app);

  void Tick();
  void Campaign() { raw_->Campaign(); }
  absl::Status Step(raft::Message m) { return raw_->Step(std::move(m)); }
  absl::Status Propose(std::string data) { return raw_->Propose(std::move(data)); }
  absl::Status ProposeBatch(std::vector<std::string> data) {
    return raw_->ProposeBatch(std::move(data));
  }
  void TransferLeader(raft::NodeId target) { raw_->TransferLeader(target); }
  // Registers a linearizable read; reads registered before the next PumpOnce share one
  // ReadIndex round. Completion arrives through Application::OnReadReady/OnReadFailed.
  void Read(uint64_t read_id);

  // Does one unit of work: completes the oldest Ready whose write is durable, or starts the
  // next Ready. Returns false when there was nothing to do.
  bool PumpOnce();

  // True once a write failed: the node has stopped and must be discarded.
  bool stopped() const { return stopped_; }
  const absl::Status& stop_reason() const { return stop_reason_; }
  raft::Index applied() const { return applied_; }
  raft::Status status() const { return raw_->GetStatus(); }
  absl::StatusOr<raft::Term> TermAt(raft::Index index) const { return raw_->TermAt(index); }
  // Writes submitted and not yet durable.
  size_t writes_in_flight() const;

 private:
  struct Pending {
    raft::Ready ready;  // its entries moved to storage
    raft::ReadyProgress progress;
    bool must_persist;
    bool write_done;
  };
  struct ReadBatch {
    std::vector<uint64_t> reads;
    raft::Index index = 0;
    bool index_known = false;
    uint64_t started_tick = 0;
  };

  RaftNode(std::unique_ptr<raft::RawNode> raw, const NodeOptions& options, NodeStorage* storage,
           Transport* transport, Application* app, raft::Index applied);
  void Finish(raft::Ready& rd, const raft::ReadyProgress& progress);
  void FailAllReads();
  void ServeReadyReads();
  void MaybeSnapshot();
  void Stop(absl::Status reason);

  std::unique_ptr<raft::RawNode> raw_;
  NodeOptions options_;
  NodeStorage* storage_;
  Transport* transport_;
  Application* app_;
  std::deque<Pending> pipeline_;
  raft::Index applied_;
  raft::Index last_snapshot_ = 0;
  raft::HardState last_hard_state_;  // the newest one submitted for writing
  uint64_t ticks_ = 0;
  raft::NodeId lead_ = raft::kNoNode;
  bool stopped_ = false;
  absl::Status stop_reason_;

  std::vector<uint64_t> unbatched_reads_;
  uint64_t next_batch_ = 1;
  // Distinguishes this incarnation's read contexts from a previous one's (answers to reads of
  // a crashed incarnation can arrive after a restart). Taken from raft::Config::seed, which
  // must therefore differ per start.
  uint64_t read_nonce_ = 0;
  std::map<uint64_t, ReadBatch> read_batches_;
};

}  // namespace chainfire::node
