// The read-only view of durable Raft state that the core reads from.
//
// The core never writes storage: entries, hard state and snapshots reach it through Ready, and
// the caller makes them durable and visible here before calling RawNode::Advance. Errors:
//   Compacted   (absl OutOfRange): the index is at or below the last snapshot.
//   Unavailable (absl NotFound):   the index is beyond the last entry.
//   SnapshotTemporarilyUnavailable (absl Unavailable): Snapshot() cannot produce one right now.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "chainfire/raft/types.h"

namespace chainfire::raft {

absl::Status CompactedError(Index index);
absl::Status UnavailableError(Index index);
absl::Status SnapshotTemporarilyUnavailableError();
bool IsCompacted(const absl::Status& status);
bool IsEntryUnavailable(const absl::Status& status);
bool IsSnapshotTemporarilyUnavailable(const absl::Status& status);

inline constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();

// Thread-safety: the core calls it from one thread; implementations that are written from
// another thread must synchronise themselves.
class LogStorage {
 public:
  virtual ~LogStorage() = default;

  // The durable hard state at startup.
  virtual HardState InitialHardState() const = 0;
  // Entries [lo, hi), at least one if any exist, at most `max_bytes` of data after the first.
  virtual absl::StatusOr<std::vector<Entry>> Entries(Index lo, Index hi,
                                                     uint64_t max_bytes) const = 0;
  // Term of entry `index`; FirstIndex()-1 (the snapshot's index) is answered too.
  virtual absl::StatusOr<Term> TermAt(Index index) const = 0;
  // Index of the first entry that may be read (snapshot index + 1).
  virtual Index FirstIndex() const = 0;
  // Index of the last entry (the snapshot index when there is no entry after it).
  virtual Index LastIndex() const = 0;
  // The most recent snapshot.
  virtual absl::StatusOr<Snapshot> GetSnapshot() const = 0;
};

// An in-memory LogStorage: the reference implementation and the test double. Entries, hard
// state and snapshots are set by the owner after it has made them durable (or, in tests,
// immediately). Thread-safety: none; use from one thread.
class MemoryStorage : public LogStorage {
 public:
  MemoryStorage();

  HardState InitialHardState() const override { return hard_state_; }
  absl::StatusOr<std::vector<Entry>> Entries(Index lo, Index hi, uint64_t max_bytes) const override;
  absl::StatusOr<Term> TermAt(Index index) const override;
  Index FirstIndex() const override;
  Index LastIndex() const override;
  absl::StatusOr<Snapshot> GetSnapshot() const override;

  void SetHardState(const HardState& hs) { hard_state_ = hs; }
  // Appends `entries`, truncating any existing entries from entries.front().index on. Entries
  // at or below the snapshot are ignored. Requires no gap after LastIndex().
  absl::Status Append(const std::vector<Entry>& entries);
  // Replaces all state with `snapshot` (older snapshots are refused with Compacted).
  absl::Status ApplySnapshot(const Snapshot& snapshot);
  // Records a snapshot of the application state at `index` (<= LastIndex()) with `data`.
  absl::Status CreateSnapshot(Index index, std::string data);
  // Drops entries up to and including `index` (which must be covered by the snapshot or be
  // <= LastIndex()); the dummy entry keeps index's term.
  absl::Status Compact(Index index);

 private:
  HardState hard_state_;
  Snapshot snapshot_;
  // entries_[0] is a dummy holding the snapshot's index and term.
  std::vector<Entry> entries_;
};

// Total data bytes of `entries`, the measure that message and Ready size limits use.
uint64_t PayloadSize(const std::vector<Entry>& entries);

// Keeps the longest prefix of `entries` (at least one entry) whose data fits `max_bytes`.
void LimitSize(std::vector<Entry>& entries, uint64_t max_bytes);

}  // namespace chainfire::raft
