// RawNode: the pure Raft state machine (no threads, no clock, no I/O).
//
// Time is counted in Tick() calls; randomness comes from Config::seed; all output leaves
// through Ready. The caller's loop, in this order (see docs/architecture.md):
//
//   1. rd = GetReady()                       (only when HasReady())
//   2. send rd.early_messages                  may go before the write below is durable
//   3. write rd.snapshot, rd.entries, rd.hard_state durably (fsync), in Ready order
//   4. once that write is durable: make it visible through LogStorage, send rd.messages,
//      apply rd.snapshot then rd.committed_entries, hand out rd.read_states
//   5. Advance(rd)
//
// Several Readies may be outstanding (GetReady may be called again before the previous write
// completes); steps 4-5 must then happen in the order the Readies were taken, and their writes
// must become durable in that order. Step/Tick/Propose may be called at any time in between.
//
// Safety rules the contract encodes:
//  - rd.messages (votes, vote replies, append acknowledgements, ...) depend on rd's write and
//    must not be sent before it is durable.
//  - rd.early_messages are only a leader's appends, heartbeats and snapshots; the leader may send
//    them before its own append is durable because it counts its own entries toward commit only
//    when Advance reports them durable.
//  - rd.committed_entries may include entries written by rd itself: apply them only after the
//    write is durable. Nothing is applied or acknowledged before the local fsync.
//
// The transport reports nothing back (no ReportUnreachable / ReportSnapshot as in etcd-io/raft):
// a follower that does not answer stalls at its full in-flight window and is probed again on
// its next heartbeat response; a snapshot that got no answer within an election timeout of
// heartbeats is sent again.
//
// Thread-safety: none. Use from one thread.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "chainfire/raft/config.h"
#include "chainfire/raft/log_storage.h"
#include "chainfire/raft/types.h"

namespace chainfire::raft {

class Raft;

// Everything the caller must persist, send and apply; see the loop above.
// What Advance reads of a Ready: the snapshot's index, the last entry it wrote (index and
// term) and the last entry it committed. Nothing else of the Ready is read back, so a caller
// may move a Ready's entries and messages away (to storage, to the transport) once it has
// taken this.
struct ReadyProgress {
  Index snapshot_index = 0;    // 0: no snapshot
  Index last_entry_index = 0;  // 0: no entries
  Term last_entry_term = 0;
  Index last_committed_index = 0;  // 0: nothing committed
};

struct Ready {
  std::optional<SoftState> soft_state;   // set when leader or role changed
  std::optional<HardState> hard_state;   // set when it must be persisted
  std::vector<ReadState> read_states;    // ReadIndex answers (serve after applying to index)
  std::vector<Entry> entries;            // to append to the durable log
  std::optional<Snapshot> snapshot;      // to persist and apply (replaces the log)
  std::vector<Entry> committed_entries;  // to apply, in order, once the write is durable
  std::vector<Message> early_messages;   // leader's appends/heartbeats: may precede the write
  std::vector<Message> messages;         // only after the write is durable

  bool MustPersist() const { return hard_state || !entries.empty() || snapshot; }
  ReadyProgress Progress() const;
};

// The state of one follower as the leader sees it (for status and tests).
struct FollowerStatus {
  Index match = 0;
  Index next = 0;
  std::string state;
};

struct Status {
  NodeId id = kNoNode;
  HardState hard_state;
  SoftState soft_state;
  Index applied = 0;
  Index last_index = 0;
  NodeId lead_transferee = kNoNode;
  std::map<NodeId, FollowerStatus> progress;  // leader only
};

class RawNode {
 public:
  // Reads the initial hard state and log from `storage`, which must outlive the node and must
  // reflect every Ready written so far before Advance is called for it.
  static absl::StatusOr<std::unique_ptr<RawNode>> Create(const Config& config,
                                                         const LogStorage* storage);
  ~RawNode();

  // Advances logical time by one tick.
  void Tick();
  // Starts an election now (skipping the timeout; pre-vote first when enabled).
  void Campaign();
  // Proposes `data` for the log. FailedPrecondition ("raft proposal dropped") when there is no
  // leader to take it or leadership is being transferred. Success means only "accepted for
  // replication"; the entry may still be lost before it commits.
  absl::Status Propose(std::string data);
  // Proposes several entries at once, in order: one append and one message per follower for
  // all of them (a follower forwards them to the leader as one message). All or none are
  // accepted, as for Propose.
  absl::Status ProposeBatch(std::vector<std::string> data);
  // Feeds a message from another member. Messages for other nodes or of local-only kinds are
  // refused with InvalidArgument.
  absl::Status Step(Message message);
  // Requests a read index for `context` (unique per request); the answer arrives as a
  // ReadState. FailedPrecondition when no leader is known.
  absl::Status ReadIndex(std::string context);
  // Asks the leader to hand leadership to `target`.
  void TransferLeader(NodeId target);

  bool HasReady() const;
  Ready GetReady();
  // Step 5 of the contract: the Ready `progress` was taken from is durable, its messages sent and
  // its snapshot and committed entries applied. Marks its entries stable (the leader counts
  // them toward commit from now on) and its committed entries applied.
  void Advance(const ReadyProgress& progress);
  void Advance(const Ready& ready) { Advance(ready.Progress()); }

  Status GetStatus() const;
  // Term of entry `index` in the node's log including its unstable tail (for checkers): 0
  // beyond the last index, Compacted below the first.
  absl::StatusOr<Term> TermAt(Index index) const;

 private:
  explicit RawNode(std::unique_ptr<Raft> raft);
  std::unique_ptr<Raft> raft_;
  SoftState prev_soft_;
  HardState prev_hard_;
};

// Human-readable renderings, used by logs and the golden tests.
std::string Describe(const Entry& entry);
std::string Describe(const Message& message);
std::string Describe(const HardState& hs);
std::string Describe(const Ready& ready);

}  // namespace chainfire::raft
