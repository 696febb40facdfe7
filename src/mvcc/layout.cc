#include "chainfire/mvcc/layout.h"

#include "chainfire/storage/engine.h"

namespace chainfire::mvcc::layout {

using storage::BigEndian64;
using storage::GetBigEndian64;

std::string EncodeValueRecord(bool tombstone, int64_t create, int64_t version, int64_t lease,
                              std::string_view value) {
  std::string out;
  out.reserve(kValueRecordHeaderBytes + value.size());
  out.push_back(tombstone ? kTombstoneFlag : 0);
  storage::PutBigEndian64(&out, static_cast<uint64_t>(create));
  storage::PutBigEndian64(&out, static_cast<uint64_t>(version));
  storage::PutBigEndian64(&out, static_cast<uint64_t>(lease));
  out.append(value);
  return out;
}

bool DecodeValueRecord(std::string_view v, ValueRecord* out) {
  if (v.size() < kValueRecordHeaderBytes) return false;
  out->tombstone = v[0] == kTombstoneFlag;
  out->create_revision = static_cast<int64_t>(GetBigEndian64(v.data() + 1));
  out->version = static_cast<int64_t>(GetBigEndian64(v.data() + 9));
  out->lease = static_cast<int64_t>(GetBigEndian64(v.data() + 17));
  out->value = v.substr(kValueRecordHeaderBytes);
  return true;
}

std::string LeaseKey(int64_t id) { return kLeasePrefix + BigEndian64(id); }

std::string LeaseKeysPrefix(int64_t id) { return kLeaseKeyPrefix + BigEndian64(id); }

std::string LeaseKeyIndex(int64_t id, std::string_view key) {
  return LeaseKeysPrefix(id) + std::string(key);
}

std::string AlarmKey(uint64_t member, int type) {
  return kAlarmPrefix + BigEndian64(member) + BigEndian64(static_cast<uint64_t>(type));
}

bool DecodeAlarmKey(std::string_view key, uint64_t* member, int* type) {
  const std::string_view prefix = kAlarmPrefix;
  if (key.size() != prefix.size() + 16 || key.substr(0, prefix.size()) != prefix) return false;
  *member = GetBigEndian64(key.data() + prefix.size());
  *type = static_cast<int>(GetBigEndian64(key.data() + prefix.size() + 8));
  return true;
}

std::string MemberKey(uint64_t id) { return kMemberPrefix + BigEndian64(id); }

bool DecodeMemberKey(std::string_view key, uint64_t* id) {
  const std::string_view prefix = kMemberPrefix;
  if (key.size() != prefix.size() + 8 || key.substr(0, prefix.size()) != prefix) return false;
  *id = GetBigEndian64(key.data() + prefix.size());
  return true;
}

bool DecodeLease(std::string_view key, std::string_view value, int64_t* id, int64_t* ttl) {
  const std::string_view prefix = kLeasePrefix;
  if (key.size() != prefix.size() + 8 || value.size() != 8 ||
      key.substr(0, prefix.size()) != prefix) {
    return false;
  }
  *id = static_cast<int64_t>(GetBigEndian64(key.data() + prefix.size()));
  *ttl = static_cast<int64_t>(GetBigEndian64(value.data()));
  return true;
}

}  // namespace chainfire::mvcc::layout
