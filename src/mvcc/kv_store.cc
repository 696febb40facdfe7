#include "chainfire/mvcc/kv_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "chainfire/common/check.h"
#include "chainfire/mvcc/key_encoding.h"
#include "rocksdb/write_batch.h"

namespace chainfire::mvcc {

using storage::Column;

absl::Status ErrFutureRevision() {
  return absl::OutOfRangeError("etcdserver: mvcc: required revision is a future revision");
}
absl::Status ErrKeyNotFound() { return absl::InvalidArgumentError("etcdserver: key not found"); }
absl::Status ErrLeaseNotFound() {
  return absl::NotFoundError("etcdserver: requested lease not found");
}

namespace {
constexpr char kRevisionKey[] = "revision";
constexpr char kAppliedKey[] = "applied_index";
constexpr char kTombstone = 1;

std::string EncodeRecord(bool tombstone, int64_t create, int64_t version, int64_t lease,
                         const std::string& value) {
  std::string out;
  out.reserve(25 + value.size());
  out.push_back(tombstone ? kTombstone : 0);
  storage::PutBigEndian64(&out, create);
  storage::PutBigEndian64(&out, version);
  storage::PutBigEndian64(&out, lease);
  out += value;
  return out;
}

// Decodes a record into kv (except key and mod_revision); returns false for a tombstone.
bool DecodeRecord(const rocksdb::Slice& v, mvccpb::KeyValue* kv) {
  CF_CHECK(v.size() >= 25) << "corrupt mvcc record";
  if (v.data()[0] == kTombstone) return false;
  kv->set_create_revision(static_cast<int64_t>(storage::GetBigEndian64(v.data() + 1)));
  kv->set_version(static_cast<int64_t>(storage::GetBigEndian64(v.data() + 9)));
  kv->set_lease(static_cast<int64_t>(storage::GetBigEndian64(v.data() + 17)));
  kv->set_value(v.data() + 25, v.size() - 25);
  return true;
}

// etcd's range_end conventions: "" = the key alone; "\0" = every key >= key.
bool InRange(const std::string& k, const std::string& key, const std::string& range_end) {
  if (range_end.empty()) return k == key;
  if (range_end == std::string(1, '\0')) return k >= key;
  return k >= key && k < range_end;
}
}  // namespace

absl::StatusOr<std::unique_ptr<KvStore>> KvStore::Open(storage::Engine* engine) {
  auto store = std::unique_ptr<KvStore>(new KvStore(engine));
  if (auto r = engine->Get(Column::kMeta, kRevisionKey); r.ok()) {
    store->revision_ = static_cast<int64_t>(storage::GetBigEndian64(r->data()));
  } else if (!absl::IsNotFound(r.status())) {
    return r.status();
  }
  if (auto a = engine->Get(Column::kMeta, kAppliedKey); a.ok()) {
    store->applied_ = storage::GetBigEndian64(a->data());
  } else if (!absl::IsNotFound(a.status())) {
    return a.status();
  }
  return store;
}

bool KvStore::Latest(const std::string& key, int64_t rev, mvccpb::KeyValue* kv) const {
  std::unique_ptr<rocksdb::Iterator> it(
      engine_->db()->NewIterator(rocksdb::ReadOptions(), engine_->cf(Column::kKv)));
  it->Seek(VersionKey(key, {rev, INT64_MAX}));
  if (!it->Valid()) return false;
  std::string k;
  Revision r;
  CF_CHECK(DecodeVersionKey(it->key().ToStringView(), &k, &r)) << "corrupt mvcc key";
  if (k != key) return false;
  if (!DecodeRecord(it->value(), kv)) return false;
  kv->set_key(key);
  kv->set_mod_revision(r.main);
  return true;
}

template <typename Fn>
void KvStore::Scan(const std::string& key, const std::string& range_end, int64_t rev,
                   Fn&& fn) const {
  if (range_end.empty()) {
    mvccpb::KeyValue kv;
    if (Latest(key, rev, &kv)) fn(std::move(kv));
    return;
  }
  std::unique_ptr<rocksdb::Iterator> it(
      engine_->db()->NewIterator(rocksdb::ReadOptions(), engine_->cf(Column::kKv)));
  it->Seek(KeyPrefix(key));
  std::string k;
  Revision r;
  while (it->Valid()) {
    CF_CHECK(DecodeVersionKey(it->key().ToStringView(), &k, &r)) << "corrupt mvcc key";
    if (!InRange(k, key, range_end)) break;
    if (r.main > rev) it->Seek(VersionKey(k, {rev, INT64_MAX}));  // newest version <= rev
    if (!it->Valid()) break;
    std::string at;
    Revision ar;
    CF_CHECK(DecodeVersionKey(it->key().ToStringView(), &at, &ar)) << "corrupt mvcc key";
    if (at == k) {
      mvccpb::KeyValue kv;
      if (DecodeRecord(it->value(), &kv)) {
        kv.set_key(k);
        kv.set_mod_revision(ar.main);
        fn(std::move(kv));
      }
      it->Seek(KeyPrefixEnd(k));
    }
    // else: k has no version <= rev and the seek already landed on the next key.
  }
  CF_CHECK(it->status().ok()) << "mvcc scan failed: " << it->status().ToString();
}

void KvStore::Commit(rocksdb::WriteBatch* batch, uint64_t index, int64_t new_revision) {
  batch->Put(engine_->cf(Column::kMeta), kAppliedKey, storage::BigEndian64(index));
  if (new_revision != revision()) {
    batch->Put(engine_->cf(Column::kMeta), kRevisionKey, storage::BigEndian64(new_revision));
  }
  // Not synced: the entry's log write precedes this one in the shared WAL, so a crash can only
  // lose a suffix of applies, which are replayed from the log.
  absl::Status s = engine_->Write(batch, /*sync=*/false);
  CF_CHECK(s.ok()) << "applying entry " << index << " failed: " << s.ToString();
  revision_.store(new_revision, std::memory_order_release);
  applied_.store(index, std::memory_order_release);
}

void KvStore::ApplyMemberAttributes(uint64_t index, uint64_t member_id,
                                    const std::string& attributes) {
  rocksdb::WriteBatch batch;
  batch.Put(engine_->cf(Column::kMeta), "member/" + storage::BigEndian64(member_id), attributes);
  Commit(&batch, index, revision());
}

std::map<uint64_t, std::string> KvStore::LoadMemberAttributes() const {
  std::map<uint64_t, std::string> out;
  std::unique_ptr<rocksdb::Iterator> it(
      engine_->db()->NewIterator(rocksdb::ReadOptions(), engine_->cf(Column::kMeta)));
  const std::string prefix = "member/";
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    if (it->key().size() != prefix.size() + 8) continue;
    out[storage::GetBigEndian64(it->key().data() + prefix.size())] = it->value().ToString();
  }
  return out;
}

void KvStore::MarkApplied(uint64_t index) {
  rocksdb::WriteBatch batch;
  Commit(&batch, index, revision());
}

absl::Status KvStore::ApplyPut(uint64_t index, const etcdserverpb::PutRequest& req,
                               etcdserverpb::PutResponse* resp) {
  const int64_t rev = revision() + 1;
  mvccpb::KeyValue prev;
  const bool exists = Latest(req.key(), revision(), &prev);
  absl::Status error;
  if ((req.ignore_value() || req.ignore_lease()) && !exists) {
    error = ErrKeyNotFound();
  } else if (req.lease() != 0 && !req.ignore_lease()) {
    error = ErrLeaseNotFound();  // leases arrive with issue 4: none exists yet
  }
  if (!error.ok()) {
    MarkApplied(index);
    resp->mutable_header()->set_revision(revision());
    return error;
  }
  const std::string& value = req.ignore_value() ? prev.value() : req.value();
  const int64_t lease = req.ignore_lease() ? prev.lease() : req.lease();
  const int64_t create = exists ? prev.create_revision() : rev;
  const int64_t version = exists ? prev.version() + 1 : 1;
  rocksdb::WriteBatch batch;
  batch.Put(engine_->cf(Column::kKv), VersionKey(req.key(), {rev, 0}),
            EncodeRecord(false, create, version, lease, value));
  batch.Put(engine_->cf(Column::kKvRevisions), RevisionKey({rev, 0}), req.key());
  Commit(&batch, index, rev);
  resp->mutable_header()->set_revision(rev);
  if (req.prev_kv() && exists) *resp->mutable_prev_kv() = std::move(prev);
  return absl::OkStatus();
}

absl::Status KvStore::ApplyDeleteRange(uint64_t index, const etcdserverpb::DeleteRangeRequest& req,
                                       etcdserverpb::DeleteRangeResponse* resp) {
  std::vector<mvccpb::KeyValue> doomed;
  Scan(req.key(), req.range_end(), revision(),
       [&](mvccpb::KeyValue kv) { doomed.push_back(std::move(kv)); });
  rocksdb::WriteBatch batch;
  const int64_t rev = doomed.empty() ? revision() : revision() + 1;
  for (size_t i = 0; i < doomed.size(); ++i) {
    const Revision r{rev, static_cast<int64_t>(i)};
    batch.Put(engine_->cf(Column::kKv), VersionKey(doomed[i].key(), r),
              EncodeRecord(true, 0, 0, 0, ""));
    batch.Put(engine_->cf(Column::kKvRevisions), RevisionKey(r), doomed[i].key());
  }
  Commit(&batch, index, rev);
  resp->mutable_header()->set_revision(rev);
  resp->set_deleted(static_cast<int64_t>(doomed.size()));
  if (req.prev_kv()) {
    for (mvccpb::KeyValue& kv : doomed) *resp->add_prev_kvs() = std::move(kv);
  }
  return absl::OkStatus();
}

absl::Status KvStore::Range(const etcdserverpb::RangeRequest& req,
                            etcdserverpb::RangeResponse* resp) const {
  const int64_t current = revision();
  const int64_t rev = req.revision() > 0 ? req.revision() : current;
  if (rev > current) return ErrFutureRevision();
  resp->mutable_header()->set_revision(current);
  std::vector<mvccpb::KeyValue> kvs;
  int64_t count = 0;
  Scan(req.key(), req.range_end(), rev, [&](mvccpb::KeyValue kv) {
    ++count;  // etcd's count ignores the filters and the limit
    if (req.min_mod_revision() > 0 && kv.mod_revision() < req.min_mod_revision()) return;
    if (req.max_mod_revision() > 0 && kv.mod_revision() > req.max_mod_revision()) return;
    if (req.min_create_revision() > 0 && kv.create_revision() < req.min_create_revision()) return;
    if (req.max_create_revision() > 0 && kv.create_revision() > req.max_create_revision()) return;
    if (!req.count_only()) kvs.push_back(std::move(kv));
  });
  resp->set_count(count);
  if (req.count_only()) return absl::OkStatus();
  using RR = etcdserverpb::RangeRequest;
  RR::SortOrder order = req.sort_order();
  if (order == RR::NONE && req.sort_target() != RR::KEY) order = RR::ASCEND;  // as etcd
  if (order != RR::NONE) {
    auto key_of = [&](const mvccpb::KeyValue& kv) -> std::tuple<int64_t, const std::string*> {
      switch (req.sort_target()) {
        case RR::VERSION:
          return {kv.version(), nullptr};
        case RR::CREATE:
          return {kv.create_revision(), nullptr};
        case RR::MOD:
          return {kv.mod_revision(), nullptr};
        case RR::VALUE:
          return {0, &kv.value()};
        default:
          return {0, &kv.key()};
      }
    };
    auto less = [&](const mvccpb::KeyValue& a, const mvccpb::KeyValue& b) {
      auto [na, sa] = key_of(a);
      auto [nb, sb] = key_of(b);
      if (sa != nullptr) return *sa < *sb;
      return na < nb;
    };
    if (order == RR::ASCEND) {
      std::stable_sort(kvs.begin(), kvs.end(), less);
    } else {
      std::stable_sort(
          kvs.begin(), kvs.end(),
          [&](const mvccpb::KeyValue& a, const mvccpb::KeyValue& b) { return less(b, a); });
    }
  }
  if (req.limit() > 0 && static_cast<int64_t>(kvs.size()) > req.limit()) {
    kvs.resize(req.limit());
    resp->set_more(true);
  }
  for (mvccpb::KeyValue& kv : kvs) {
    if (req.keys_only()) kv.clear_value();
    *resp->add_kvs() = std::move(kv);
  }
  return absl::OkStatus();
}

}  // namespace chainfire::mvcc
