// Reads: the latest version of a key, range scans at a revision, Range, the events of a
// revision span (watch catch-up) and etcd's range filtering, sorting and limits.
#include <algorithm>
#include <tuple>

#include "chainfire/common/check.h"
#include "chainfire/mvcc/layout.h"
#include "kv_store_internal.h"

namespace chainfire::mvcc {

using storage::Column;

namespace internal {

bool DecodeRecord(const rocksdb::Slice& v, mvccpb::KeyValue* kv) {
  layout::ValueRecord r;
  CF_CHECK(layout::DecodeValueRecord(v.ToStringView(), &r)) << "corrupt mvcc record";
  if (r.tombstone) return false;
  kv->set_create_revision(r.create_revision);
  kv->set_version(r.version);
  kv->set_lease(r.lease);
  kv->set_value(r.value.data(), r.value.size());
  return true;
}

}  // namespace internal

using internal::DecodeRecord;
using internal::InRange;

bool KvStore::Latest(const std::string& key, int64_t rev, mvccpb::KeyValue* kv) const {
  std::unique_ptr<rocksdb::Iterator> it(
      engine_->db()->NewIterator(storage::OneKeyRead(), engine_->cf(Column::kKv)));
  const std::string seek = VersionKey(key, {rev, INT64_MAX});
  it->Seek(seek);
  if (!it->Valid()) return false;
  // The same user key iff the same escaped prefix: compared encoded, without decoding.
  const std::string_view prefix(seek.data(), seek.size() - 16);
  if (!IsVersionKeyOf(it->key().ToStringView(), prefix)) return false;
  if (!DecodeRecord(it->value(), kv)) return false;
  kv->set_key(key);
  kv->set_mod_revision(VersionKeyRevision(it->key().ToStringView()).main);
  return true;
}

void KvStore::Scan(const std::string& key, const std::string& range_end, int64_t rev,
                   absl::FunctionRef<void(mvccpb::KeyValue)> fn) const {
  if (range_end.empty()) {
    mvccpb::KeyValue kv;
    if (Latest(key, rev, &kv)) fn(std::move(kv));
    return;
  }
  std::unique_ptr<rocksdb::Iterator> it(
      engine_->db()->NewIterator(storage::OrderedRead(), engine_->cf(Column::kKv)));
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

int64_t KvStore::ReadEvents(int64_t from, int64_t to, const std::string& key,
                            const std::string& range_end, bool prev_kv, size_t max_events,
                            std::vector<mvccpb::Event>* out) const {
  std::shared_lock<std::shared_mutex> state(state_mu_);
  std::unique_ptr<rocksdb::Iterator> revs(
      engine_->db()->NewIterator(rocksdb::ReadOptions(), engine_->cf(Column::kKvRevisions)));
  std::unique_ptr<rocksdb::Iterator> versions(
      engine_->db()->NewIterator(storage::OneKeyRead(), engine_->cf(Column::kKv)));
  int64_t last = from - 1;
  size_t scanned = 0;
  for (revs->Seek(RevisionKey({from, 0})); revs->Valid(); revs->Next()) {
    const auto [main, sub] = DecodeRevisionKey(revs->key().ToStringView());
    if (main > to) break;
    // Stop between revisions once enough was read (never split one revision).
    if (main != last && (out->size() >= max_events || scanned >= 4 * max_events)) return last;
    last = main;
    ++scanned;
    const std::string k = revs->value().ToString();
    if (!InRange(k, key, range_end)) continue;
    versions->Seek(VersionKey(k, {main, sub}));
    std::string vk;
    Revision vr;
    if (!versions->Valid() || !DecodeVersionKey(versions->key().ToStringView(), &vk, &vr) ||
        vk != k || vr.main != main || vr.sub != sub) {
      continue;  // removed by compaction meanwhile
    }
    mvccpb::Event ev;
    mvccpb::KeyValue kv;
    if (DecodeRecord(versions->value(), &kv)) {
      ev.set_type(mvccpb::Event::PUT);
      kv.set_key(k);
      kv.set_mod_revision(main);
      *ev.mutable_kv() = std::move(kv);
    } else {
      ev.set_type(mvccpb::Event::DELETE);
      ev.mutable_kv()->set_key(k);
      ev.mutable_kv()->set_mod_revision(main);
    }
    if (prev_kv) {
      versions->Next();  // the next older version of the same key, if any
      std::string pk;
      Revision pr;
      mvccpb::KeyValue prev;
      if (versions->Valid() && DecodeVersionKey(versions->key().ToStringView(), &pk, &pr) &&
          pk == k && DecodeRecord(versions->value(), &prev)) {
        prev.set_key(k);
        prev.set_mod_revision(pr.main);
        *ev.mutable_prev_kv() = std::move(prev);
      }
    }
    out->push_back(std::move(ev));
  }
  CF_CHECK(revs->status().ok()) << "event scan failed";
  return to;
}

absl::Status KvStore::Range(const etcdserverpb::RangeRequest& req,
                            etcdserverpb::RangeResponse* resp) const {
  std::shared_lock<std::shared_mutex> state(state_mu_);
  return RangeUnlocked(req, resp);
}

absl::Status KvStore::ReadTxn(const etcdserverpb::TxnRequest& req,
                              etcdserverpb::TxnResponse* resp) const {
  std::shared_lock<std::shared_mutex> state(state_mu_);
  // A WriteTxn that never writes: the apply path's own evaluation, at the current revision.
  WriteTxn txn(const_cast<KvStore*>(this), revision());
  return txn.Txn(req, resp);
}

absl::Status KvStore::RangeUnlocked(const etcdserverpb::RangeRequest& req,
                                    etcdserverpb::RangeResponse* resp) const {
  internal::Ops().range->Add();
  const int64_t current = revision();
  const int64_t rev = req.revision() > 0 ? req.revision() : current;
  if (rev > current) return ErrFutureRevision();
  if (req.revision() > 0 && rev < compact_revision()) return ErrCompacted();
  resp->mutable_header()->set_revision(current);
  std::vector<mvccpb::KeyValue> kvs;
  Scan(req.key(), req.range_end(), rev, [&](mvccpb::KeyValue kv) { kvs.push_back(std::move(kv)); });
  FinishRange(req, std::move(kvs), resp);
  return absl::OkStatus();
}

void FinishRange(const etcdserverpb::RangeRequest& req, std::vector<mvccpb::KeyValue> all,
                 etcdserverpb::RangeResponse* resp) {
  resp->set_count(static_cast<int64_t>(all.size()));  // etcd's count ignores filters and limit
  if (req.count_only()) return;
  std::vector<mvccpb::KeyValue> kvs;
  kvs.reserve(all.size());
  for (mvccpb::KeyValue& kv : all) {
    if (req.min_mod_revision() > 0 && kv.mod_revision() < req.min_mod_revision()) continue;
    if (req.max_mod_revision() > 0 && kv.mod_revision() > req.max_mod_revision()) continue;
    if (req.min_create_revision() > 0 && kv.create_revision() < req.min_create_revision()) continue;
    if (req.max_create_revision() > 0 && kv.create_revision() > req.max_create_revision()) continue;
    kvs.push_back(std::move(kv));
  }
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
}

}  // namespace chainfire::mvcc
