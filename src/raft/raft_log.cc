#include "raft_log.h"

#include <algorithm>

#include "chainfire/common/check.h"

namespace chainfire::raft {

const std::optional<Snapshot> RaftLog::kNoSnapshot;

RaftLog::RaftLog(const LogStorage* storage, uint64_t max_applying_bytes)
    : storage_(storage), max_applying_bytes_(max_applying_bytes) {
  const Index first = storage_->FirstIndex();
  offset_ = storage_->LastIndex() + 1;
  in_progress_ = offset_;
  committed_ = first - 1;
  applied_ = applying_ = first - 1;
}

Index RaftLog::FirstIndex() const {
  if (snapshot_) return snapshot_->meta.index + 1;
  return storage_->FirstIndex();
}

Index RaftLog::LastIndex() const {
  if (!entries_.empty()) return offset_ + entries_.size() - 1;
  if (snapshot_) return snapshot_->meta.index;
  return storage_->LastIndex();
}

Term RaftLog::LastTerm() const { return TermOrZero(LastIndex()); }

std::optional<Term> RaftLog::UnstableTerm(Index index) const {
  if (index < offset_) {
    if (snapshot_ && snapshot_->meta.index == index) return snapshot_->meta.term;
    return std::nullopt;
  }
  if (index - offset_ < entries_.size()) return entries_[index - offset_].term;
  return std::nullopt;
}

absl::StatusOr<Term> RaftLog::TermAt(Index index) const {
  if (index + 1 < FirstIndex() || index > LastIndex()) return Term{0};
  if (auto t = UnstableTerm(index)) return *t;
  return storage_->TermAt(index);
}

Term RaftLog::TermOrZero(Index index) const {
  auto t = TermAt(index);
  return t.ok() ? *t : 0;
}

bool RaftLog::MatchTerm(Index index, Term term) const {
  if (index > LastIndex()) return false;  // TermAt answers 0 there, which must not match
  auto t = TermAt(index);
  return t.ok() && *t == term;
}

Index RaftLog::PersistedLastIndex() const {
  if (snapshot_) return 0;  // a snapshot is being installed: claim nothing
  if (!entries_.empty()) return offset_ - 1;
  return storage_->LastIndex();
}

Index RaftLog::FindConflict(const std::vector<Entry>& entries) const {
  for (const Entry& e : entries) {
    if (!MatchTerm(e.index, e.term)) return e.index;
  }
  return 0;
}

std::pair<Index, Term> RaftLog::FindConflictByTerm(Index index, Term term) const {
  for (; index > 0; --index) {
    auto t = TermAt(index);
    if (!t.ok()) return {index, 0};  // compacted: the leader will fall back to a snapshot
    if (*t <= term) return {index, *t};
  }
  return {0, 0};
}

std::optional<Index> RaftLog::MaybeAppend(Index index, Term log_term, Index commit,
                                          std::vector<Entry> entries) {
  if (!MatchTerm(index, log_term)) return std::nullopt;
  const Index last_new = index + entries.size();
  const Index conflict = FindConflict(entries);
  if (conflict != 0) {
    CF_CHECK(conflict > committed_)
        << "entry " << conflict << " conflicts with committed entry " << committed_;
    entries.erase(entries.begin(), entries.begin() + (conflict - (index + 1)));
    Append(std::move(entries));
  }
  CommitTo(std::min(commit, last_new));
  return last_new;
}

Index RaftLog::Append(std::vector<Entry> entries) {
  if (entries.empty()) return LastIndex();
  CF_CHECK(entries.front().index > committed_)
      << "append at " << entries.front().index << " below commit " << committed_;
  TruncateAndAppend(std::move(entries));
  return LastIndex();
}

void RaftLog::TruncateAndAppend(std::vector<Entry> entries) {
  const Index from = entries.front().index;
  if (from == offset_ + entries_.size()) {
    for (Entry& e : entries) entries_.push_back(std::move(e));
  } else if (from <= offset_) {
    entries_ = std::move(entries);
    offset_ = from;
    in_progress_ = offset_;
  } else {
    entries_.resize(from - offset_);
    for (Entry& e : entries) entries_.push_back(std::move(e));
    in_progress_ = std::min(in_progress_, from);
  }
}

bool RaftLog::IsUpToDate(Index last_index, Term term) const {
  const Term last_term = LastTerm();
  return term > last_term || (term == last_term && last_index >= LastIndex());
}

bool RaftLog::MaybeCommit(Index max_index, Term term) {
  if (max_index > committed_ && TermOrZero(max_index) == term) {
    CommitTo(max_index);
    return true;
  }
  return false;
}

void RaftLog::CommitTo(Index index) {
  if (index <= committed_) return;
  CF_CHECK(index <= LastIndex()) << "commit " << index << " is beyond last index " << LastIndex();
  committed_ = index;
}

absl::StatusOr<std::vector<Entry>> RaftLog::Slice(Index lo, Index hi, uint64_t max_bytes) const {
  if (lo >= hi) return std::vector<Entry>{};
  if (lo < FirstIndex()) return CompactedError(lo);
  CF_CHECK(hi <= LastIndex() + 1) << "slice [" << lo << "," << hi << ") out of bound "
                                  << LastIndex();
  std::vector<Entry> out;
  if (lo < offset_) {
    auto stored = storage_->Entries(lo, std::min(hi, offset_), max_bytes);
    if (!stored.ok()) return stored.status();
    out = std::move(*stored);
    if (out.size() < std::min(hi, offset_) - lo) return out;  // size limit reached
  }
  if (hi > offset_) {
    for (Index i = std::max(lo, offset_); i < hi; ++i) out.push_back(entries_[i - offset_]);
  }
  LimitSize(out, max_bytes);
  return out;
}

absl::StatusOr<Snapshot> RaftLog::GetSnapshot() const {
  if (snapshot_) return *snapshot_;
  return storage_->GetSnapshot();
}

std::vector<Entry> RaftLog::EntriesToPersist() const {
  if (!HasEntriesToPersist()) return {};
  return std::vector<Entry>(entries_.begin() + (in_progress_ - offset_), entries_.end());
}

bool RaftLog::HasCommittedToApply() const {
  if (snapshot_) return false;  // the snapshot must be applied first
  return committed_ > applying_;
}

std::vector<Entry> RaftLog::CommittedToApply() const {
  if (!HasCommittedToApply()) return {};
  auto entries = Slice(applying_ + 1, committed_ + 1, max_applying_bytes_);
  CF_CHECK(entries.ok()) << "committed entries unavailable: " << entries.status().ToString();
  return std::move(*entries);
}

void RaftLog::AcceptReady(Index last_committed_handed_out) {
  if (snapshot_) {
    snapshot_in_progress_ = true;
  }
  in_progress_ = offset_ + entries_.size();
  if (last_committed_handed_out > applying_) applying_ = last_committed_handed_out;
}

void RaftLog::StableTo(Index index, Term term) {
  auto t = UnstableTerm(index);
  if (!t || *t != term || index < offset_) return;  // replaced meanwhile; stays unstable
  entries_.erase(entries_.begin(), entries_.begin() + (index + 1 - offset_));
  offset_ = index + 1;
  in_progress_ = std::max(in_progress_, offset_);
}

void RaftLog::StableSnapshotTo(Index index) {
  if (snapshot_ && snapshot_->meta.index == index) {
    snapshot_.reset();
    snapshot_in_progress_ = false;
  }
}

void RaftLog::AppliedTo(Index index) {
  if (index == 0 || index <= applied_) return;
  CF_CHECK(index <= committed_) << "applied " << index << " beyond commit " << committed_;
  applied_ = index;
  applying_ = std::max(applying_, index);
}

void RaftLog::Restore(const Snapshot& snapshot) {
  committed_ = snapshot.meta.index;
  entries_.clear();
  offset_ = snapshot.meta.index + 1;
  in_progress_ = offset_;
  snapshot_ = snapshot;
  snapshot_in_progress_ = false;
}

}  // namespace chainfire::raft
