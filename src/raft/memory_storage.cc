#include <string>

#include "absl/strings/str_cat.h"
#include "chainfire/raft/log_storage.h"

namespace chainfire::raft {

namespace {
constexpr char kCompactedMsg[] = "requested index is unavailable due to compaction";
constexpr char kUnavailableMsg[] = "requested entry at index is unavailable";
constexpr char kSnapshotUnavailableMsg[] = "snapshot is temporarily unavailable";
}  // namespace

absl::Status CompactedError(Index index) {
  return absl::OutOfRangeError(absl::StrCat(kCompactedMsg, " (index ", index, ")"));
}
absl::Status UnavailableError(Index index) {
  return absl::NotFoundError(absl::StrCat(kUnavailableMsg, " (index ", index, ")"));
}
absl::Status SnapshotTemporarilyUnavailableError() {
  return absl::UnavailableError(kSnapshotUnavailableMsg);
}
bool IsCompacted(const absl::Status& s) { return s.code() == absl::StatusCode::kOutOfRange; }
bool IsEntryUnavailable(const absl::Status& s) { return s.code() == absl::StatusCode::kNotFound; }
bool IsSnapshotTemporarilyUnavailable(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable;
}

uint64_t PayloadSize(const std::vector<Entry>& entries) {
  uint64_t size = 0;
  for (const Entry& e : entries) size += e.data.size();
  return size;
}

void LimitSize(std::vector<Entry>& entries, uint64_t max_bytes) {
  if (entries.empty() || max_bytes == kNoLimit) return;
  uint64_t size = entries[0].data.size();
  size_t keep = 1;
  while (keep < entries.size()) {
    size += entries[keep].data.size();
    if (size > max_bytes) break;
    ++keep;
  }
  entries.resize(keep);
}

MemoryStorage::MemoryStorage() : entries_(1) {}

Index MemoryStorage::FirstIndex() const { return entries_[0].index + 1; }
Index MemoryStorage::LastIndex() const { return entries_[0].index + entries_.size() - 1; }

absl::StatusOr<Term> MemoryStorage::TermAt(Index index) const {
  const Index offset = entries_[0].index;
  if (index < offset) return CompactedError(index);
  if (index - offset >= entries_.size()) return UnavailableError(index);
  return entries_[index - offset].term;
}

absl::StatusOr<std::vector<Entry>> MemoryStorage::Entries(Index lo, Index hi,
                                                          uint64_t max_bytes) const {
  const Index offset = entries_[0].index;
  if (lo <= offset) return CompactedError(lo);
  if (hi > LastIndex() + 1) return UnavailableError(hi - 1);
  std::vector<Entry> out(entries_.begin() + (lo - offset), entries_.begin() + (hi - offset));
  LimitSize(out, max_bytes);
  return out;
}

absl::StatusOr<Snapshot> MemoryStorage::GetSnapshot() const { return snapshot_; }

absl::Status MemoryStorage::Append(const std::vector<Entry>& entries) {
  if (entries.empty()) return absl::OkStatus();
  const Index first = FirstIndex();
  const Index last_new = entries.back().index;
  if (last_new < first) return absl::OkStatus();  // all already compacted
  size_t skip = entries.front().index < first ? first - entries.front().index : 0;
  const Index start = entries[skip].index;
  if (start > LastIndex() + 1) {
    return absl::InternalError(
        absl::StrCat("missing log entries: last ", LastIndex(), ", appending from ", start));
  }
  entries_.resize(start - entries_[0].index);
  entries_.insert(entries_.end(), entries.begin() + skip, entries.end());
  return absl::OkStatus();
}

absl::Status MemoryStorage::ApplySnapshot(const Snapshot& snapshot) {
  if (snapshot.meta.index < snapshot_.meta.index) return CompactedError(snapshot.meta.index);
  snapshot_ = snapshot;
  entries_.assign(1, Entry{snapshot.meta.term, snapshot.meta.index, {}});
  return absl::OkStatus();
}

absl::Status MemoryStorage::CreateSnapshot(Index index, std::string data) {
  if (index <= snapshot_.meta.index) return CompactedError(index);
  if (index > LastIndex()) {
    return absl::InvalidArgumentError(
        absl::StrCat("snapshot index ", index, " is beyond last index ", LastIndex()));
  }
  snapshot_.meta = SnapshotMeta{index, entries_[index - entries_[0].index].term};
  snapshot_.data = std::move(data);
  return absl::OkStatus();
}

absl::Status MemoryStorage::Compact(Index index) {
  const Index offset = entries_[0].index;
  if (index <= offset) return CompactedError(index);
  if (index > LastIndex()) {
    return absl::InvalidArgumentError(
        absl::StrCat("compact index ", index, " is beyond last index ", LastIndex()));
  }
  const size_t cut = index - offset;
  Entry dummy{entries_[cut].term, index, {}};
  entries_.erase(entries_.begin(), entries_.begin() + cut);
  entries_[0] = std::move(dummy);
  return absl::OkStatus();
}

}  // namespace chainfire::raft
