// The MVCC store's on-disk records: the one place their keys, constants and encodings live.
// KvStore, the backup dump/restore code and the snapshot install all read and write through it.
//
// kv column:      VersionKey(key, rev) (key_encoding.h) -> value record:
//                 u8 flags (1 = tombstone), BE64 create_revision, BE64 version, BE64 lease, value
// kv_revs column: RevisionKey(rev) (key_encoding.h) -> user key
// meta column:    "revision", "applied_index", "installed_applied_index", "compact_revision",
//                 "compacted_through" -> BE64;
//                 "lease/" BE64(id) -> BE64 granted TTL; "leasekey/" BE64(id) key -> "";
//                 "alarm/" BE64(member) BE64(type) -> ""; "member/" BE64(id) -> attributes.
// The meta column's "format_version" belongs to the storage engine (storage/engine.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace chainfire::mvcc::layout {

inline constexpr char kRevisionKey[] = "revision";
inline constexpr char kAppliedKey[] = "applied_index";
// BE64: the applied index a Raft snapshot install left (the sender's, which may be past the
// snapshot's own index and so past this member's commit index until Raft catches up); written
// in the install's last batch, with kAppliedKey.
inline constexpr char kInstalledAppliedKey[] = "installed_applied_index";
inline constexpr char kCompactKey[] = "compact_revision";
inline constexpr char kCompactDoneKey[] = "compacted_through";
inline constexpr char kLeasePrefix[] = "lease/";
inline constexpr char kLeaseKeyPrefix[] = "leasekey/";
inline constexpr char kAlarmPrefix[] = "alarm/";
inline constexpr char kMemberPrefix[] = "member/";
// The auth store (internal::AuthState), one record.
inline constexpr char kAuthKey[] = "auth";

// The value record's flags byte.
inline constexpr char kTombstoneFlag = 1;
inline constexpr size_t kValueRecordHeaderBytes = 25;

struct ValueRecord {
  bool tombstone = false;
  int64_t create_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;
  std::string_view value;
};

std::string EncodeValueRecord(bool tombstone, int64_t create, int64_t version, int64_t lease,
                              std::string_view value);
// False when the bytes are too short to be a record.
bool DecodeValueRecord(std::string_view bytes, ValueRecord* out);
// Whether the record's flags mark a tombstone (without decoding the rest).
inline bool IsTombstoneRecord(std::string_view bytes) {
  return !bytes.empty() && bytes[0] == kTombstoneFlag;
}

// "lease/" BE64(id): the lease's granted TTL.
std::string LeaseKey(int64_t id);
// "leasekey/" BE64(id): the prefix of the lease's attached keys; + key: one of them.
std::string LeaseKeysPrefix(int64_t id);
std::string LeaseKeyIndex(int64_t id, std::string_view key);
// "alarm/" BE64(member) BE64(type): an active alarm.
std::string AlarmKey(uint64_t member, int type);
// Decodes an alarm key; false when it is not one.
bool DecodeAlarmKey(std::string_view key, uint64_t* member, int* type);
// "member/" BE64(id): a member's published attributes.
std::string MemberKey(uint64_t id);
// Decodes a member key; false when it is not one.
bool DecodeMemberKey(std::string_view key, uint64_t* id);
// Decodes a lease key and its BE64 TTL value; false when they are not one.
bool DecodeLease(std::string_view key, std::string_view value, int64_t* id, int64_t* ttl);

}  // namespace chainfire::mvcc::layout
