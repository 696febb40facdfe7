#include "chainfire/storage/raft_format.h"

#include "absl/strings/str_cat.h"

namespace chainfire::storage::raft_format {

std::string EntryKey(raft::Index index) { return BigEndian64(index); }

raft::Index DecodeEntryKey(std::string_view key) { return GetBigEndian64(key.data()); }

std::string EntryHeader(raft::Term term) {
  std::string v;
  v.reserve(kEntryHeaderBytes);
  v.push_back(kEntryVersion);
  PutBigEndian64(&v, term);
  return v;
}

absl::StatusOr<raft::Entry> DecodeEntry(raft::Index index, std::string_view v) {
  if (v.size() < kEntryHeaderBytes) {
    return absl::DataLossError(
        absl::StrCat("log entry ", index, " is truncated (", v.size(), " bytes)"));
  }
  if (v[0] != kEntryVersion) {
    return absl::DataLossError(absl::StrCat(
        "log entry ", index, " has record version ", static_cast<int>(v[0]),
        "; this build reads version ", static_cast<int>(kEntryVersion),
        " (written by a newer ChainFire? upgrade this member; the entry is never skipped)"));
  }
  raft::Entry e;
  e.index = index;
  e.term = GetBigEndian64(v.data() + 1);
  e.data.assign(v.data() + kEntryHeaderBytes, v.size() - kEntryHeaderBytes);
  return e;
}

std::string EncodeHardState(const raft::HardState& hs) {
  std::string v;
  PutBigEndian64(&v, hs.term);
  PutBigEndian64(&v, hs.vote);
  PutBigEndian64(&v, hs.commit);
  if (hs.recovering) v.push_back(1);
  return v;
}

absl::StatusOr<raft::HardState> DecodeHardState(std::string_view v) {
  // 24 bytes, or 25 with the disk-loss recovery flag.
  if (v.size() != 24 && v.size() != 25) {
    return absl::DataLossError("hard state record has a bad size");
  }
  return raft::HardState{GetBigEndian64(v.data()), GetBigEndian64(v.data() + 8),
                         GetBigEndian64(v.data() + 16), v.size() == 25 && v[24] == 1};
}

std::string EncodeSnapshotMeta(const raft::SnapshotMeta& meta) {
  std::string v;
  PutBigEndian64(&v, meta.index);
  PutBigEndian64(&v, meta.term);
  return v;
}

bool DecodeSnapshotMeta(std::string_view v, raft::SnapshotMeta* meta) {
  if (v.size() < 16) return false;
  *meta = {GetBigEndian64(v.data()), GetBigEndian64(v.data() + 8)};
  return true;
}

void PutIdentity(Engine* engine, rocksdb::WriteBatch* batch, std::string_view identity,
                 std::string_view membership) {
  batch->Put(engine->cf(Column::kRaftState), kIdentityKey, identity);
  batch->Put(engine->cf(Column::kRaftState), kMembershipKey, membership);
}

void PutClusterSalt(Engine* engine, rocksdb::WriteBatch* batch, std::string_view salt) {
  batch->Put(engine->cf(Column::kRaftState), kClusterSaltKey, salt);
}

}  // namespace chainfire::storage::raft_format
