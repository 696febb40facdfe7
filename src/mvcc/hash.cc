// HashKV: a CRC-32 (zlib's, IEEE polynomial, as etcd's hash/crc32) over the logical MVCC
// state, the same on every member at the same revision whatever its physical compaction.
#include <zlib.h>

#include "chainfire/common/check.h"
#include "chainfire/mvcc/layout.h"
#include "kv_store_internal.h"

namespace chainfire::mvcc {

using storage::Column;

namespace {
// Continues `crc` over `bytes` (zlib takes at most UINT_MAX bytes a call; keys and values are
// far smaller, and request validation bounds them).
uint32_t Crc32(uint32_t crc, const rocksdb::Slice& bytes) {
  return static_cast<uint32_t>(
      crc32(crc, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
}
}  // namespace

absl::Status KvStore::HashKV(int64_t rev, uint32_t* hash, int64_t* hashed_revision) const {
  std::shared_lock<std::shared_mutex> state(state_mu_);
  const int64_t current = revision();
  const int64_t at = rev > 0 ? rev : current;
  if (at > current) return ErrFutureRevision();
  const int64_t compacted = compact_revision();
  if (rev > 0 && at < compacted) return ErrCompacted();
  uint32_t crc = 0;
  std::unique_ptr<rocksdb::Iterator> it(
      engine_->db()->NewIterator(storage::OrderedRead(), engine_->cf(Column::kKv)));
  std::string k, last_key;
  bool have_last = false, kept_base = false;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    Revision r;
    CF_CHECK(DecodeVersionKey(it->key().ToStringView(), &k, &r)) << "corrupt mvcc key";
    if (!have_last || k != last_key) {
      last_key = k;
      have_last = true;
      kept_base = false;
    }
    if (r.main > at) continue;
    if (r.main <= compacted) {
      // Below the compaction point only the key's newest live version is logical state.
      if (kept_base) continue;
      kept_base = true;
      if (layout::IsTombstoneRecord(it->value().ToStringView())) continue;
    }
    crc = Crc32(crc, it->key());
    crc = Crc32(crc, it->value());
  }
  CF_CHECK(it->status().ok()) << "hash scan failed";
  *hash = crc;
  *hashed_revision = at;
  return absl::OkStatus();
}

}  // namespace chainfire::mvcc
