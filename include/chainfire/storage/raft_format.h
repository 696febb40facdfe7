// The records of the raft_log and raft_state column families: the one place their keys,
// constants and encodings live. RaftLogStore reads and writes the log, hard state, snapshot and
// compaction records; the daemon (main.cc) and restore write the identity records through
// PutIdentity / PutClusterSalt; backup reads the membership record.
//
// raft_log:   EntryKey(index) = BE64(index) -> u8 record version (kEntryVersion), BE64(term), data
// raft_state: "hard_state" -> BE64(term) BE64(vote) BE64(commit) [u8 1: recovering from disk loss]
//             "compacted"  -> BE64(index) BE64(term): the entry before the first kept one
//             "snapshot"   -> BE64(index) BE64(term) data: the latest snapshot
//             "identity"   -> "member <id> of <membership>" (checked at every boot)
//             "membership" -> backup::BackupHeader bytes: cluster ID and members (offline backups)
//             "cluster_salt" -> hex SHA-256 of the backup a restored cluster was built from
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "chainfire/raft/types.h"
#include "chainfire/storage/engine.h"
#include "rocksdb/write_batch.h"

namespace chainfire::storage::raft_format {

// raft_log
inline constexpr char kEntryVersion = 1;
inline constexpr size_t kEntryHeaderBytes = 9;
std::string EntryKey(raft::Index index);
raft::Index DecodeEntryKey(std::string_view key);  // the key is 8 bytes (column invariant)
// The record's header (version, term); the entry's data follows it.
std::string EntryHeader(raft::Term term);
// DataLoss naming the index when truncated or of an unknown version (never skipped).
absl::StatusOr<raft::Entry> DecodeEntry(raft::Index index, std::string_view record);

// raft_state
inline constexpr char kHardStateKey[] = "hard_state";
inline constexpr char kSnapshotKey[] = "snapshot";
inline constexpr char kCompactedKey[] = "compacted";
inline constexpr char kIdentityKey[] = "identity";
inline constexpr char kMembershipKey[] = "membership";
inline constexpr char kClusterSaltKey[] = "cluster_salt";

std::string EncodeHardState(const raft::HardState& hs);
absl::StatusOr<raft::HardState> DecodeHardState(std::string_view record);
// BE64(index) BE64(term); a snapshot record appends its data.
std::string EncodeSnapshotMeta(const raft::SnapshotMeta& meta);
// Decodes the meta at the start of `record`; false when shorter than 16 bytes.
bool DecodeSnapshotMeta(std::string_view record, raft::SnapshotMeta* meta);

// The identity a data dir is bound to at first boot, and the membership it was published with.
void PutIdentity(Engine* engine, rocksdb::WriteBatch* batch, std::string_view identity,
                 std::string_view membership);
// The salt of a restored cluster's ID.
void PutClusterSalt(Engine* engine, rocksdb::WriteBatch* batch, std::string_view salt);

}  // namespace chainfire::storage::raft_format
