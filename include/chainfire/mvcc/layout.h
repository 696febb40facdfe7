// The MVCC store's records, shared by KvStore and the backup code that dumps and restores them.
//
// kv column:      VersionKey(key, rev) -> value record:
//                 u8 flags (1 = tombstone), BE64 create_revision, BE64 version, BE64 lease, value
// kv_revs column: RevisionKey(rev) -> user key
// meta column:    "revision", "applied_index", "compact_revision", "compacted_through" (BE64);
//                 "lease/" BE64(id) -> BE64 granted TTL; "leasekey/" BE64(id) key -> "";
//                 "alarm/" BE64(member) BE64(type) -> ""; "member/" BE64(id) -> attributes.
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
std::string LeaseKey(int64_t id);
std::string LeaseKeyIndex(int64_t id, std::string_view key);

}  // namespace chainfire::mvcc::layout
