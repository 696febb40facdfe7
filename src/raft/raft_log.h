// RaftLog: the log as the core sees it, the durable part (LogStorage) plus an unstable tail of
// entries (and possibly a snapshot) not yet handed back as durable through Advance.
//
// Indexes: storage holds [storage.FirstIndex(), storage.LastIndex()]; the unstable tail holds
// entries from `offset_`. Entries before `in_progress_` have been handed out in a Ready and are
// being written; Advance marks them stable. Thread-safety: none (owned by one Raft).
#pragma once

#include <optional>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "chainfire/raft/log_storage.h"
#include "chainfire/raft/types.h"

namespace chainfire::raft {

class RaftLog {
 public:
  RaftLog(const LogStorage* storage, uint64_t max_applying_bytes);

  Index committed() const { return committed_; }
  Index applied() const { return applied_; }
  Index applying() const { return applying_; }

  Index FirstIndex() const;
  Index LastIndex() const;
  Term LastTerm() const;
  // Term of `index`; 0 when outside [FirstIndex()-1, LastIndex()]; an error when compacted or
  // unavailable in storage.
  absl::StatusOr<Term> TermAt(Index index) const;
  Term TermOrZero(Index index) const;
  bool MatchTerm(Index index, Term term) const;
  // The last index known durable (conservative: may be lower than the truth).
  Index PersistedLastIndex() const;

  // Follower append: if the entry at `index` has `log_term`, appends `entries` after it
  // (truncating a conflicting suffix) and commits up to min(commit, last new index). Returns
  // the last new index, or nullopt when the terms do not match.
  std::optional<Index> MaybeAppend(Index index, Term log_term, Index commit,
                                   std::vector<Entry> entries);
  // Appends entries after the current last index (or truncates at their first index).
  Index Append(std::vector<Entry> entries);
  // Largest index <= `index` whose term is <= `term`, with that term.
  std::pair<Index, Term> FindConflictByTerm(Index index, Term term) const;
  // True when a log ending at (last_index, term) is at least as up to date as this one.
  bool IsUpToDate(Index last_index, Term term) const;
  // Commits `max_index` if its entry has `term` (the current term) and it advances the commit.
  bool MaybeCommit(Index max_index, Term term);
  void CommitTo(Index index);

  // Entries [lo, hi), size-limited (at least one entry).
  absl::StatusOr<std::vector<Entry>> Slice(Index lo, Index hi, uint64_t max_bytes) const;
  absl::StatusOr<Snapshot> GetSnapshot() const;

  // --- Ready support ---
  bool HasEntriesToPersist() const { return in_progress_ < offset_ + entries_.size(); }
  std::vector<Entry> EntriesToPersist() const;
  const std::optional<Snapshot>& SnapshotToPersist() const {
    return snapshot_in_progress_ ? kNoSnapshot : snapshot_;
  }
  bool HasCommittedToApply() const;
  std::vector<Entry> CommittedToApply() const;
  // Marks everything returned by EntriesToPersist/SnapshotToPersist/CommittedToApply as handed
  // out in a Ready.
  void AcceptReady(Index last_committed_handed_out);
  // The write of entries up to (index, term) is durable: drop them from the unstable tail.
  void StableTo(Index index, Term term);
  void StableSnapshotTo(Index index);
  void AppliedTo(Index index);
  // Replaces the log with `snapshot` (a follower installing the leader's snapshot).
  void Restore(const Snapshot& snapshot);

 private:
  static const std::optional<Snapshot> kNoSnapshot;
  void TruncateAndAppend(std::vector<Entry> entries);
  Index FindConflict(const std::vector<Entry>& entries) const;
  std::optional<Term> UnstableTerm(Index index) const;

  const LogStorage* storage_;
  uint64_t max_applying_bytes_;
  Index committed_ = 0;
  Index applied_ = 0;   // acknowledged applied through Advance
  Index applying_ = 0;  // handed out to the application in a Ready

  // Unstable tail.
  std::optional<Snapshot> snapshot_;
  bool snapshot_in_progress_ = false;
  std::vector<Entry> entries_;
  Index offset_ = 0;       // index of entries_[0]
  Index in_progress_ = 0;  // first index not yet handed out for persistence
};

}  // namespace chainfire::raft
