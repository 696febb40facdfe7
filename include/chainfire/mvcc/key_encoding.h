// The MVCC key encoding in the kv column family.
//
// A user key is arbitrary bytes, so key||revision does not sort by key. We escape the key so the
// encoding is memcomparable: every 0x00 byte becomes 0x00 0xFF, and the key ends with 0x00 0x01.
// Then the revision follows as BE64(~main) BE64(~sub): inverted, so a key's newest version
// sorts first and "latest value" is one seek.
//
//   version key = escape(user key) 0x00 0x01 BE64(~main) BE64(~sub)
//
// For keys a < b (bytewise), every version key of a sorts before every version key of b.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace chainfire::mvcc {

struct Revision {
  int64_t main = 0;
  int64_t sub = 0;
  bool operator==(const Revision&) const = default;
};

// escape(key) 0x00 0x01: every version key of `key` starts with it.
std::string KeyPrefix(std::string_view user_key);
// The smallest encoded key greater than every version key of `user_key`.
std::string KeyPrefixEnd(std::string_view user_key);
std::string VersionKey(std::string_view user_key, Revision rev);
// Decodes a version key; false when it is malformed.
bool DecodeVersionKey(std::string_view encoded, std::string* user_key, Revision* rev);
// The revision of a version key (its last 16 bytes); `encoded` must be at least 16 bytes.
Revision VersionKeyRevision(std::string_view encoded);
// Whether `encoded` is a version key of the user key whose KeyPrefix is `key_prefix`, compared
// encoded (no decoding).
bool IsVersionKeyOf(std::string_view encoded, std::string_view key_prefix);
// BE64(main) BE64(sub): the kv_revs column's key, ascending by revision.
std::string RevisionKey(Revision rev);
// Decodes a kv_revs key (16 bytes: the column's invariant).
Revision DecodeRevisionKey(std::string_view encoded);

}  // namespace chainfire::mvcc
