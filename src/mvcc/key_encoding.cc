#include "chainfire/mvcc/key_encoding.h"

#include "chainfire/mvcc/layout.h"
#include "chainfire/storage/engine.h"

namespace chainfire::mvcc {

std::string KeyPrefix(std::string_view user_key) {
  std::string out;
  out.reserve(user_key.size() + 2 + 16);  // room for a revision (VersionKey)
  // Copy runs between 0x00 bytes whole; each 0x00 becomes 0x00 0xFF.
  for (size_t from = 0;;) {
    const size_t zero = user_key.find('\0', from);
    if (zero == std::string_view::npos) {
      out.append(user_key.data() + from, user_key.size() - from);
      break;
    }
    out.append(user_key.data() + from, zero - from);
    out.append("\0\xff", 2);
    from = zero + 1;
  }
  out.append("\0\x01", 2);
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
  user_key->clear();
  size_t i = 0;
  for (; i < body.size(); ++i) {
    if (body[i] != '\0') {
      // Copy the run up to the next 0x00 whole.
      size_t zero = body.find('\0', i);
      if (zero == std::string_view::npos) zero = body.size();
      user_key->append(body.data() + i, zero - i);
      i = zero - 1;
      continue;
    }
    if (i + 1 >= body.size()) return false;
    if (body[i + 1] == '\xff') {
      user_key->push_back('\0');
      ++i;
    } else if (body[i + 1] == '\x01' && i + 2 == body.size()) {
      break;
    } else {
      return false;
    }
  }
  if (i + 2 != body.size()) return false;
  rev->main = static_cast<int64_t>(~storage::GetBigEndian64(encoded.data() + body.size()));
  rev->sub = static_cast<int64_t>(~storage::GetBigEndian64(encoded.data() + body.size() + 8));
  return true;
}

std::string RevisionKey(Revision rev) {
  std::string out;
  storage::PutBigEndian64(&out, static_cast<uint64_t>(rev.main));
  storage::PutBigEndian64(&out, static_cast<uint64_t>(rev.sub));
  return out;
}

}  // namespace chainfire::mvcc

namespace chainfire::mvcc::layout {

std::string EncodeValueRecord(bool tombstone, int64_t create, int64_t version, int64_t lease,
                              std::string_view value) {
  std::string out;
  out.reserve(25 + value.size());
  out.push_back(tombstone ? 1 : 0);
  storage::PutBigEndian64(&out, static_cast<uint64_t>(create));
  storage::PutBigEndian64(&out, static_cast<uint64_t>(version));
  storage::PutBigEndian64(&out, static_cast<uint64_t>(lease));
  out.append(value);
  return out;
}

bool DecodeValueRecord(std::string_view v, ValueRecord* out) {
  if (v.size() < 25) return false;
  out->tombstone = v[0] == 1;
  out->create_revision = static_cast<int64_t>(storage::GetBigEndian64(v.data() + 1));
  out->version = static_cast<int64_t>(storage::GetBigEndian64(v.data() + 9));
  out->lease = static_cast<int64_t>(storage::GetBigEndian64(v.data() + 17));
  out->value = v.substr(25);
  return true;
}

std::string LeaseKey(int64_t id) { return kLeasePrefix + storage::BigEndian64(id); }
std::string LeaseKeyIndex(int64_t id, std::string_view key) {
  return kLeaseKeyPrefix + storage::BigEndian64(id) + std::string(key);
}

}  // namespace chainfire::mvcc::layout
