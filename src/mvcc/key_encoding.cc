#include "chainfire/mvcc/key_encoding.h"

#include <algorithm>
#include <cstring>

#include "chainfire/storage/engine.h"

namespace chainfire::mvcc {

std::string KeyPrefix(std::string_view user_key) {
  // One pass into a buffer sized up front: keys may be mostly 0x00 bytes (etcdctl check perf
  // writes 256-byte keys that are zero after a varint), so no per-zero search or append.
  const size_t zeros = static_cast<size_t>(std::count(user_key.begin(), user_key.end(), '\0'));
  std::string out;
  out.reserve(user_key.size() + zeros + 2 + 16);  // room for a revision (VersionKey)
  out.resize(user_key.size() + zeros + 2);
  char* o = out.data();
  if (zeros == 0) {
    std::memcpy(o, user_key.data(), user_key.size());
    o += user_key.size();
  } else {
    for (const char c : user_key) {
      *o++ = c;
      if (c == '\0') *o++ = '\xff';  // each 0x00 becomes 0x00 0xFF
    }
  }
  o[0] = '\0';
  o[1] = '\x01';
  return out;
}

std::string KeyPrefixEnd(std::string_view user_key) {
  std::string out = KeyPrefix(user_key);
  out.back() = '\x02';
  return out;
}

std::string VersionKey(std::string_view user_key, Revision rev) {
  std::string out = KeyPrefix(user_key);
  storage::PutBigEndian64(&out, ~static_cast<uint64_t>(rev.main));
  storage::PutBigEndian64(&out, ~static_cast<uint64_t>(rev.sub));
  return out;
}

bool DecodeVersionKey(std::string_view encoded, std::string* user_key, Revision* rev) {
  if (encoded.size() < 18) return false;
  const std::string_view body = encoded.substr(0, encoded.size() - 16);
  if (body[body.size() - 2] != '\0' || body[body.size() - 1] != '\x01') return false;
  const std::string_view escaped = body.substr(0, body.size() - 2);
  user_key->resize(escaped.size());
  char* o = user_key->data();
  for (size_t i = 0; i < escaped.size(); ++i) {
    const char c = escaped[i];
    *o++ = c;
    if (c == '\0') {
      // 0x00 must be followed by 0xFF; any other byte (or none) is not our encoding.
      if (i + 1 >= escaped.size() || escaped[i + 1] != '\xff') return false;
      ++i;
    }
  }
  user_key->resize(static_cast<size_t>(o - user_key->data()));
  *rev = VersionKeyRevision(encoded);
  return true;
}

Revision VersionKeyRevision(std::string_view encoded) {
  const char* p = encoded.data() + encoded.size() - 16;
  return Revision{static_cast<int64_t>(~storage::GetBigEndian64(p)),
                  static_cast<int64_t>(~storage::GetBigEndian64(p + 8))};
}

bool IsVersionKeyOf(std::string_view encoded, std::string_view key_prefix) {
  return encoded.size() == key_prefix.size() + 16 &&
         std::memcmp(encoded.data(), key_prefix.data(), key_prefix.size()) == 0;
}

std::string RevisionKey(Revision rev) {
  std::string out;
  storage::PutBigEndian64(&out, static_cast<uint64_t>(rev.main));
  storage::PutBigEndian64(&out, static_cast<uint64_t>(rev.sub));
  return out;
}

Revision DecodeRevisionKey(std::string_view encoded) {
  return {static_cast<int64_t>(storage::GetBigEndian64(encoded.data())),
          static_cast<int64_t>(storage::GetBigEndian64(encoded.data() + 8))};
}

}  // namespace chainfire::mvcc
