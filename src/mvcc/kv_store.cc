#include "chainfire/mvcc/kv_store.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "chainfire/common/check.h"
#include "chainfire/mvcc/key_encoding.h"
#include "chainfire/mvcc/layout.h"
#include "rocksdb/write_batch.h"

namespace chainfire::mvcc {

using storage::Column;

absl::Status ErrFutureRevision() {
  return absl::OutOfRangeError("etcdserver: mvcc: required revision is a future revision");
}
absl::Status ErrKeyNotFound() { return absl::InvalidArgumentError("etcdserver: key not found"); }
absl::Status ErrCompacted() {
  return absl::OutOfRangeError("etcdserver: mvcc: required revision has been compacted");
}
absl::Status ErrNoSpace() {
  return absl::ResourceExhaustedError("etcdserver: mvcc: database space exceeded");
}
absl::Status ErrLeaseExists() {
  return absl::FailedPreconditionError("etcdserver: lease already exists");
}
absl::Status ErrLeaseNotFound() {
  return absl::NotFoundError("etcdserver: requested lease not found");
}

namespace {
using namespace layout;  // NOLINT: the record names
constexpr char kTombstone = 1;
constexpr int64_t kCompactSlice = 1000;
uint32_t Crc32(uint32_t crc, const std::string& data) {
  crc = ~crc;
  for (unsigned char c : data) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}
std::string EncodeRecord(bool tombstone, int64_t create, int64_t version, int64_t lease,
                         const std::string& value) {
  return EncodeValueRecord(tombstone, create, version, lease, value);
}

// Decodes a record into kv (except key and mod_revision); returns false for a tombstone.
bool DecodeRecord(const rocksdb::Slice& v, mvccpb::KeyValue* kv) {
  ValueRecord r;
  CF_CHECK(DecodeValueRecord(v.ToStringView(), &r)) << "corrupt mvcc record";
  if (r.tombstone) return false;
  kv->set_create_revision(r.create_revision);
  kv->set_version(r.version);
  kv->set_lease(r.lease);
  kv->set_value(r.value.data(), r.value.size());
  return true;
}

}  // namespace

// Filters, sorts and limits the live keys of a range into `resp` (etcd's rules).
void FinishRange(const etcdserverpb::RangeRequest& req, std::vector<mvccpb::KeyValue> all,
                 etcdserverpb::RangeResponse* resp);

namespace {
// etcd's range_end conventions: "" = the key alone; "\0" = every key >= key.
bool InRange(const std::string& k, const std::string& key, const std::string& range_end) {
  if (range_end.empty()) return k == key;
  if (range_end == std::string(1, '\0')) return k >= key;
  return k >= key && k < range_end;
}

// A key's latest version as written by a txn or a batch (nullopt: deleted there).
using Writes = std::map<std::string, std::optional<mvccpb::KeyValue>>;

// A batch commits itself once it holds this many entries or bytes.
constexpr size_t kMaxStagedEntries = 1000;
constexpr size_t kMaxStagedBytes = 8 << 20;
}  // namespace

// Entries applied in a batch (BeginBatch .. CommitBatch) and not written yet.
struct KvStore::Staged {
  rocksdb::WriteBatch batch;
  // The latest version of each key the staged entries wrote (nullopt: deleted).
  Writes latest;
  std::vector<std::pair<int64_t, std::vector<mvccpb::Event>>> events;  // by revision, in order
  uint64_t index = 0;    // the last staged entry; 0 when nothing is staged
  int64_t revision = 0;  // the revision after the staged entries
  size_t entries = 0;
};

KvStore::KvStore(storage::Engine* engine, KvStoreOptions options)
    : engine_(engine), options_(options) {}

absl::StatusOr<std::unique_ptr<KvStore>> KvStore::Open(storage::Engine* engine,
                                                       KvStoreOptions options) {
  auto store = std::unique_ptr<KvStore>(new KvStore(engine, options));
  if (absl::Status s = store->Load(); !s.ok()) return s;
  store->StartCompactor();
  return store;
}

void KvStore::StartCompactor() {
  {
    std::lock_guard<std::mutex> l(compact_mu_);
    stopping_ = false;
    // A compaction interrupted by a crash resumes here.
    compact_target_ = compact_revision_;
  }
  if (options_.background_compaction) compactor_ = std::thread([this] { CompactorLoop(); });
}

void KvStore::StopCompactor() {
  {
    std::lock_guard<std::mutex> l(compact_mu_);
    stopping_ = true;
  }
  compact_cv_.notify_all();
  if (compactor_.joinable()) compactor_.join();
}

absl::Status KvStore::ReplaceState(const std::function<absl::Status()>& install) {
  FlushStaged();
  StopCompactor();
  std::unique_lock<std::shared_mutex> state(state_mu_);  // readers see the old or the new
  absl::Status s = install();
  if (s.ok()) s = Load();
  state.unlock();
  StartCompactor();
  return s;
}

absl::Status KvStore::Load() {
  KvStore* store = this;
  storage::Engine* engine = engine_;
  store->revision_ = 1;
  store->applied_ = 0;
  store->compact_revision_ = 0;
  {
    std::lock_guard<std::mutex> l(compact_mu_);
    compacted_through_ = 0;
  }
  {
    std::lock_guard<std::mutex> l(alarms_mu_);
    alarms_.clear();
  }
  {
    std::lock_guard<std::mutex> l(leases_mu_);
    leases_.clear();
  }
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
  if (auto c = engine->Get(Column::kMeta, kCompactKey); c.ok()) {
    store->compact_revision_ = static_cast<int64_t>(storage::GetBigEndian64(c->data()));
  }
  if (auto d = engine->Get(Column::kMeta, kCompactDoneKey); d.ok()) {
    std::lock_guard<std::mutex> l(compact_mu_);
    store->compacted_through_ = static_cast<int64_t>(storage::GetBigEndian64(d->data()));
  }
  {
    std::lock_guard<std::mutex> guard(alarms_mu_);
    std::unique_ptr<rocksdb::Iterator> it(
        engine->db()->NewIterator(rocksdb::ReadOptions(), engine->cf(Column::kMeta)));
    const std::string prefix = "alarm/";
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      if (it->key().size() != prefix.size() + 16) continue;
      store->alarms_.emplace(
          storage::GetBigEndian64(it->key().data() + prefix.size()),
          static_cast<int>(storage::GetBigEndian64(it->key().data() + prefix.size() + 8)));
    }
  }
  {
    std::lock_guard<std::mutex> guard(leases_mu_);
    std::unique_ptr<rocksdb::Iterator> it(
        engine->db()->NewIterator(rocksdb::ReadOptions(), engine->cf(Column::kMeta)));
    const std::string prefix = kLeasePrefix;
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      if (it->key().size() != prefix.size() + 8 || it->value().size() != 8) continue;
      store->leases_[static_cast<int64_t>(
          storage::GetBigEndian64(it->key().data() + prefix.size()))] =
          static_cast<int64_t>(storage::GetBigEndian64(it->value().data()));
    }
  }
  return absl::OkStatus();
}

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

template <typename Fn>
void KvStore::Scan(const std::string& key, const std::string& range_end, int64_t rev,
                   Fn&& fn) const {
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
  FlushStaged();
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
  if (staged_) {
    staged_->index = index;
    ++staged_->entries;
    return;
  }
  rocksdb::WriteBatch batch;
  Commit(&batch, index, revision());
}

// Applies the writes of one log entry: every change lands in one WriteBatch at revision
// base+1 (sub-revisions 0, 1, ... in order), and later operations of a txn see earlier ones.
// In a batch, the entry writes into the staged WriteBatch (rolled back if the entry fails) and
// sees the staged entries' writes.
class KvStore::WriteTxn {
 public:
  explicit WriteTxn(KvStore* store)
      : store_(store),
        staged_(store->staged_.get()),
        base_(staged_ != nullptr ? staged_->revision : store->revision()) {
    if (staged_ != nullptr) staged_->batch.SetSavePoint();
  }

  int64_t revision() const { return wrote_ ? base_ + 1 : base_; }
  rocksdb::WriteBatch* batch() { return staged_ != nullptr ? &staged_->batch : &batch_; }
  std::vector<std::unique_ptr<mvccpb::Event>>& events() { return events_; }

  // In a batch: keeps (true) or drops (false) what this entry wrote into the staged batch.
  void Settle(bool keep) {
    if (staged_ == nullptr) return;
    if (!keep) {
      CF_CHECK(staged_->batch.RollbackToSavePoint().ok()) << "staged batch lost its save point";
      return;
    }
    CF_CHECK(staged_->batch.PopSavePoint().ok()) << "staged batch lost its save point";
    for (auto& [k, v] : overlay_) staged_->latest.insert_or_assign(k, std::move(v));
  }

  absl::Status Put(const etcdserverpb::PutRequest& req, etcdserverpb::PutResponse* resp) {
    mvccpb::KeyValue prev;
    const bool exists = Latest(req.key(), &prev);
    if ((req.ignore_value() || req.ignore_lease()) && !exists) return ErrKeyNotFound();
    if (req.lease() != 0 && !req.ignore_lease() && !store_->HasLease(req.lease())) {
      return ErrLeaseNotFound();
    }
    const Revision rev = NextRevision();
    mvccpb::KeyValue kv;
    kv.set_key(req.key());
    kv.set_value(req.ignore_value() ? prev.value() : req.value());
    kv.set_lease(req.ignore_lease() ? prev.lease() : req.lease());
    kv.set_create_revision(exists ? prev.create_revision() : rev.main);
    kv.set_mod_revision(rev.main);
    kv.set_version(exists ? prev.version() + 1 : 1);
    batch()->Put(store_->engine_->cf(Column::kKv), VersionKey(req.key(), rev),
                 EncodeRecord(false, kv.create_revision(), kv.version(), kv.lease(), kv.value()));
    batch()->Put(store_->engine_->cf(Column::kKvRevisions), RevisionKey(rev), req.key());
    if (exists && prev.lease() != 0 && prev.lease() != kv.lease()) {
      batch()->Delete(store_->engine_->cf(Column::kMeta), LeaseKeyIndex(prev.lease(), req.key()));
    }
    if (kv.lease() != 0) {
      batch()->Put(store_->engine_->cf(Column::kMeta), LeaseKeyIndex(kv.lease(), req.key()), "");
    }
    mvccpb::Event* ev = events_.emplace_back(std::make_unique<mvccpb::Event>()).get();
    ev->set_type(mvccpb::Event::PUT);
    *ev->mutable_kv() = kv;
    if (exists) *ev->mutable_prev_kv() = prev;
    overlay_[req.key()] = std::move(kv);
    resp->mutable_header()->set_revision(rev.main);
    if (req.prev_kv() && exists) *resp->mutable_prev_kv() = std::move(prev);
    return absl::OkStatus();
  }

  absl::Status DeleteRange(const etcdserverpb::DeleteRangeRequest& req,
                           etcdserverpb::DeleteRangeResponse* resp) {
    std::vector<mvccpb::KeyValue> doomed = Scan(req.key(), req.range_end());
    for (mvccpb::KeyValue& kv : doomed) {
      const Revision rev = NextRevision();
      batch()->Put(store_->engine_->cf(Column::kKv), VersionKey(kv.key(), rev),
                   EncodeRecord(true, 0, 0, 0, ""));
      batch()->Put(store_->engine_->cf(Column::kKvRevisions), RevisionKey(rev), kv.key());
      overlay_[kv.key()] = std::nullopt;
      if (kv.lease() != 0) {
        batch()->Delete(store_->engine_->cf(Column::kMeta), LeaseKeyIndex(kv.lease(), kv.key()));
      }
      mvccpb::Event* ev = events_.emplace_back(std::make_unique<mvccpb::Event>()).get();
      ev->set_type(mvccpb::Event::DELETE);
      ev->mutable_kv()->set_key(kv.key());
      ev->mutable_kv()->set_mod_revision(rev.main);
      *ev->mutable_prev_kv() = kv;
    }
    resp->mutable_header()->set_revision(revision());
    resp->set_deleted(static_cast<int64_t>(doomed.size()));
    if (req.prev_kv()) {
      for (mvccpb::KeyValue& kv : doomed) *resp->add_prev_kvs() = std::move(kv);
    }
    return absl::OkStatus();
  }

  absl::Status Range(const etcdserverpb::RangeRequest& req, etcdserverpb::RangeResponse* resp) {
    if (req.revision() > 0) {
      if (req.revision() > base_) return ErrFutureRevision();
      if (req.revision() < store_->compact_revision()) return ErrCompacted();
      return store_->Range(req, resp);  // history is not changed by this txn
    }
    std::vector<mvccpb::KeyValue> kvs = Scan(req.key(), req.range_end());
    FinishRange(req, std::move(kvs), resp);
    resp->mutable_header()->set_revision(revision());
    return absl::OkStatus();
  }

  absl::Status Txn(const etcdserverpb::TxnRequest& req, etcdserverpb::TxnResponse* resp) {
    bool ok = true;
    for (const etcdserverpb::Compare& c : req.compare()) ok = ok && Compare(c);
    const auto& ops = ok ? req.success() : req.failure();
    // A read at a future revision fails the whole txn before anything is written.
    for (const etcdserverpb::RequestOp& op : ops) {
      if (op.has_request_range() && op.request_range().revision() > base_) {
        return ErrFutureRevision();
      }
      if (op.has_request_range() && op.request_range().revision() > 0 &&
          op.request_range().revision() < store_->compact_revision()) {
        return ErrCompacted();
      }
    }
    resp->set_succeeded(ok);
    for (const etcdserverpb::RequestOp& op : ops) {
      etcdserverpb::ResponseOp* r = resp->add_responses();
      absl::Status s;
      switch (op.request_case()) {
        case etcdserverpb::RequestOp::kRequestRange:
          s = Range(op.request_range(), r->mutable_response_range());
          break;
        case etcdserverpb::RequestOp::kRequestPut:
          s = Put(op.request_put(), r->mutable_response_put());
          break;
        case etcdserverpb::RequestOp::kRequestDeleteRange:
          s = DeleteRange(op.request_delete_range(), r->mutable_response_delete_range());
          break;
        case etcdserverpb::RequestOp::kRequestTxn:
          s = Txn(op.request_txn(), r->mutable_response_txn());
          break;
        default:
          break;
      }
      if (!s.ok()) return s;
    }
    resp->mutable_header()->set_revision(revision());
    return absl::OkStatus();
  }

 private:
  Revision NextRevision() {
    wrote_ = true;
    return Revision{base_ + 1, sub_++};
  }

  bool Latest(const std::string& key, mvccpb::KeyValue* kv) {
    // This entry's own writes, then the batch's, then storage.
    for (const Writes* writes : {&overlay_, staged_ != nullptr ? &staged_->latest : nullptr}) {
      if (writes == nullptr) continue;
      auto it = writes->find(key);
      if (it == writes->end()) continue;
      if (!it->second) return false;
      *kv = *it->second;
      return true;
    }
    return store_->Latest(key, base_, kv);
  }

  // Live keys in the range as this txn sees them (its own writes included), in key order.
  std::vector<mvccpb::KeyValue> Scan(const std::string& key, const std::string& range_end) {
    std::map<std::string, mvccpb::KeyValue> merged;
    store_->Scan(key, range_end, base_,
                 [&](mvccpb::KeyValue kv) { merged.emplace(kv.key(), std::move(kv)); });
    auto apply = [&](const Writes& writes) {
      for (auto it = writes.lower_bound(key); it != writes.end(); ++it) {
        const auto& [k, v] = *it;
        if (!InRange(k, key, range_end)) {
          if (range_end.empty() || (k >= range_end && range_end != std::string(1, '\0'))) break;
          continue;
        }
        if (v) {
          merged[k] = *v;
        } else {
          merged.erase(k);
        }
      }
    };
    if (staged_ != nullptr) apply(staged_->latest);
    apply(overlay_);
    std::vector<mvccpb::KeyValue> out;
    out.reserve(merged.size());
    for (auto& [k, v] : merged) out.push_back(std::move(v));
    return out;
  }

  bool Compare(const etcdserverpb::Compare& c) {
    std::vector<mvccpb::KeyValue> kvs = Scan(c.key(), c.range_end());
    if (kvs.empty()) {
      // As etcd: comparing the value of a missing key always fails; other targets compare
      // against zero.
      if (c.target() == etcdserverpb::Compare::VALUE) return false;
      return CompareKv(c, mvccpb::KeyValue());
    }
    for (const mvccpb::KeyValue& kv : kvs) {
      if (!CompareKv(c, kv)) return false;
    }
    return true;
  }

  static bool CompareKv(const etcdserverpb::Compare& c, const mvccpb::KeyValue& kv) {
    int result = 0;
    auto cmp = [](int64_t a, int64_t b) { return a < b ? -1 : (a > b ? 1 : 0); };
    switch (c.target()) {
      case etcdserverpb::Compare::VALUE: {
        const int r = kv.value().compare(c.value());
        result = r < 0 ? -1 : (r > 0 ? 1 : 0);
        break;
      }
      case etcdserverpb::Compare::CREATE:
        result = cmp(kv.create_revision(), c.create_revision());
        break;
      case etcdserverpb::Compare::MOD:
        result = cmp(kv.mod_revision(), c.mod_revision());
        break;
      case etcdserverpb::Compare::VERSION:
        result = cmp(kv.version(), c.version());
        break;
      case etcdserverpb::Compare::LEASE:
        result = cmp(kv.lease(), c.lease());
        break;
      default:
        return false;
    }
    switch (c.result()) {
      case etcdserverpb::Compare::EQUAL:
        return result == 0;
      case etcdserverpb::Compare::NOT_EQUAL:
        return result != 0;
      case etcdserverpb::Compare::GREATER:
        return result > 0;
      case etcdserverpb::Compare::LESS:
        return result < 0;
      default:
        return false;
    }
  }

  KvStore* store_;
  Staged* staged_;
  const int64_t base_;
  int64_t sub_ = 0;
  bool wrote_ = false;
  rocksdb::WriteBatch batch_;
  Writes overlay_;
  std::vector<std::unique_ptr<mvccpb::Event>> events_;  // in revision order
};

absl::Status KvStore::ApplyPut(uint64_t index, const etcdserverpb::PutRequest& req,
                               etcdserverpb::PutResponse* resp) {
  WriteTxn txn(this);
  absl::Status s = txn.Put(req, resp);
  return Finish(index, &txn, s, resp->mutable_header());
}

absl::Status KvStore::ApplyDeleteRange(uint64_t index, const etcdserverpb::DeleteRangeRequest& req,
                                       etcdserverpb::DeleteRangeResponse* resp) {
  WriteTxn txn(this);
  absl::Status s = txn.DeleteRange(req, resp);
  return Finish(index, &txn, s, resp->mutable_header());
}

namespace {
// Whether a txn reads at a past revision (such reads go to storage, which lacks staged writes).
bool ReadsHistory(const etcdserverpb::TxnRequest& t) {
  for (const auto* ops : {&t.success(), &t.failure()}) {
    for (const etcdserverpb::RequestOp& op : *ops) {
      if (op.has_request_range() && op.request_range().revision() > 0) return true;
      if (op.has_request_txn() && ReadsHistory(op.request_txn())) return true;
    }
  }
  return false;
}
}  // namespace

absl::Status KvStore::ApplyTxn(uint64_t index, const etcdserverpb::TxnRequest& req,
                               etcdserverpb::TxnResponse* resp) {
  if (ReadsHistory(req)) FlushStaged();
  WriteTxn txn(this);
  absl::Status s = txn.Txn(req, resp);
  return Finish(index, &txn, s, resp->mutable_header());
}

KvStore::~KvStore() { StopCompactor(); }

absl::Status KvStore::ApplyCompact(uint64_t index, int64_t rev,
                                   etcdserverpb::CompactionResponse* resp) {
  FlushStaged();
  absl::Status error;
  if (rev > revision()) {
    error = ErrFutureRevision();
  } else if (rev <= compact_revision()) {
    error = ErrCompacted();
  }
  if (!error.ok()) {
    MarkApplied(index);
    resp->mutable_header()->set_revision(revision());
    return error;
  }
  rocksdb::WriteBatch batch;
  batch.Put(engine_->cf(Column::kMeta), kCompactKey, storage::BigEndian64(rev));
  compact_revision_.store(rev, std::memory_order_release);  // reads below fail from now on
  Commit(&batch, index, revision());
  resp->mutable_header()->set_revision(revision());
  {
    std::lock_guard<std::mutex> l(compact_mu_);
    compact_target_ = std::max(compact_target_, rev);
  }
  compact_cv_.notify_all();
  return absl::OkStatus();
}

void KvStore::WhenPhysicallyCompacted(int64_t rev, std::function<void()> done) {
  {
    std::lock_guard<std::mutex> l(compact_mu_);
    if (compacted_through_ < rev) {
      compact_waiters_.emplace_back(rev, std::move(done));
      return;
    }
  }
  done();
}

void KvStore::CompactorLoop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> l(compact_mu_);
      compact_cv_.wait(l, [&] { return stopping_ || compacted_through_ < compact_target_; });
      if (stopping_) return;
    }
    CompactOnce();
  }
}

bool KvStore::CompactStep() {
  CF_CHECK(!options_.background_compaction) << "CompactStep with a background compactor";
  FlushStaged();
  return CompactOnce();
}

bool KvStore::CompactOnce() {
  int64_t from, to;
  {
    std::lock_guard<std::mutex> l(compact_mu_);
    if (compacted_through_ >= compact_target_) return false;
    from = compacted_through_;
    to = compact_target_;
  }
  const int64_t done = CompactSlice(from, to, kCompactSlice);
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard<std::mutex> l(compact_mu_);
    compacted_through_ = done;
    for (auto it = compact_waiters_.begin(); it != compact_waiters_.end();) {
      if (it->first <= done) {
        ready.push_back(std::move(it->second));
        it = compact_waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& f : ready) f();
  return true;
}

int64_t KvStore::CompactSlice(int64_t from, int64_t to, int64_t limit) {
  // Walk the revision index over [from, to]. For each key written there, keep only its newest
  // version at or below `to` (none, if that is a tombstone): every older version goes, also
  // those an earlier compaction kept, or a deleted key would come back when its tombstone is
  // removed.
  std::unique_ptr<rocksdb::Iterator> revs(
      engine_->db()->NewIterator(rocksdb::ReadOptions(), engine_->cf(Column::kKvRevisions)));
  std::unique_ptr<rocksdb::Iterator> versions(
      engine_->db()->NewIterator(storage::OneKeyRead(), engine_->cf(Column::kKv)));
  rocksdb::WriteBatch batch;
  std::set<std::string> done_keys;
  int64_t last = from;
  int64_t n = 0;
  bool hit_limit = false;
  // From `from` itself: a delete kept at the previous compaction revision goes now.
  for (revs->Seek(RevisionKey({std::max<int64_t>(from, 1), 0})); revs->Valid(); revs->Next()) {
    const int64_t main = static_cast<int64_t>(storage::GetBigEndian64(revs->key().data()));
    if (main > to) break;
    if (n >= limit && main != last) {  // slices end on a revision boundary
      hit_limit = true;
      break;
    }
    last = main;
    ++n;
    const std::string key = revs->value().ToString();
    if (!done_keys.insert(key).second) continue;
    versions->Seek(VersionKey(key, {to, INT64_MAX}));
    bool newest = true;
    for (; versions->Valid(); versions->Next()) {
      std::string k;
      Revision r;
      CF_CHECK(DecodeVersionKey(versions->key().ToStringView(), &k, &r)) << "corrupt mvcc key";
      if (k != key) break;
      const bool tombstone =
          versions->value().size() > 0 && versions->value().data()[0] == kTombstone;
      if (newest && (!tombstone || r.main == to)) {
        // The live value at `to` is kept; so is a delete at `to` itself, so that revision `to`
        // (still readable, and where a watch may start or resume) keeps all its events (found
        // by the member simulation: a watch resumed at the compaction revision missed a
        // delete). A later compaction removes it.
        newest = false;
        continue;
      }
      if (!newest && options_.testing_compaction_resurrects) break;  // the bug: keeps the rest
      newest = false;
      batch.Delete(engine_->cf(Column::kKv), versions->key());
      batch.Delete(engine_->cf(Column::kKvRevisions), RevisionKey(r));
    }
  }
  CF_CHECK(revs->status().ok()) << "compaction scan failed: " << revs->status().ToString();
  if (!hit_limit) last = to;
  batch.Put(engine_->cf(Column::kMeta), kCompactDoneKey, storage::BigEndian64(last));
  absl::Status s = engine_->Write(&batch, /*sync=*/false);
  CF_CHECK(s.ok()) << "compaction write failed: " << s.ToString();
  return last;
}

absl::Status KvStore::ApplyLeaseGrant(uint64_t index, int64_t id, int64_t ttl,
                                      etcdserverpb::LeaseGrantResponse* resp) {
  FlushStaged();
  if (HasLease(id)) {
    MarkApplied(index);
    return ErrLeaseExists();
  }
  rocksdb::WriteBatch batch;
  batch.Put(engine_->cf(Column::kMeta), LeaseKey(id), storage::BigEndian64(ttl));
  {
    std::lock_guard<std::mutex> l(leases_mu_);
    leases_[id] = ttl;
  }
  Commit(&batch, index, revision());
  resp->set_id(id);
  resp->set_ttl(ttl);
  resp->mutable_header()->set_revision(revision());
  return absl::OkStatus();
}

absl::Status KvStore::ApplyLeaseRevoke(uint64_t index, int64_t id,
                                       etcdserverpb::LeaseRevokeResponse* resp) {
  FlushStaged();
  if (!HasLease(id)) {
    MarkApplied(index);
    return ErrLeaseNotFound();
  }
  WriteTxn txn(this);
  for (const std::string& key : LeaseKeys(id)) {
    etcdserverpb::DeleteRangeRequest del;
    del.set_key(key);
    etcdserverpb::DeleteRangeResponse ignored;
    (void)txn.DeleteRange(del, &ignored);
    txn.batch()->Delete(engine_->cf(Column::kMeta), LeaseKeyIndex(id, key));
  }
  txn.batch()->Delete(engine_->cf(Column::kMeta), LeaseKey(id));
  {
    std::lock_guard<std::mutex> l(leases_mu_);
    leases_.erase(id);
  }
  absl::Status s = Finish(index, &txn, absl::OkStatus(), resp->mutable_header());
  FlushStaged();
  return s;
}

std::map<int64_t, int64_t> KvStore::Leases() const {
  std::lock_guard<std::mutex> l(leases_mu_);
  return leases_;
}

bool KvStore::HasLease(int64_t id) const {
  std::lock_guard<std::mutex> l(leases_mu_);
  return leases_.count(id) > 0;
}

std::vector<std::string> KvStore::LeaseKeys(int64_t id) const {
  std::shared_lock<std::shared_mutex> state(state_mu_);
  std::vector<std::string> keys;
  std::unique_ptr<rocksdb::Iterator> it(
      engine_->db()->NewIterator(rocksdb::ReadOptions(), engine_->cf(Column::kMeta)));
  const std::string prefix = kLeaseKeyPrefix + storage::BigEndian64(id);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    keys.push_back(it->key().ToString().substr(prefix.size()));
  }
  return keys;
}

void KvStore::ApplyAlarm(uint64_t index, const etcdserverpb::AlarmRequest& req,
                         etcdserverpb::AlarmResponse* resp) {
  FlushStaged();
  const std::string key = "alarm/" + storage::BigEndian64(req.memberid()) +
                          storage::BigEndian64(static_cast<uint64_t>(req.alarm()));
  rocksdb::WriteBatch batch;
  bool changed = false;
  {
    std::lock_guard<std::mutex> l(alarms_mu_);
    const auto entry = std::make_pair(req.memberid(), static_cast<int>(req.alarm()));
    if (req.action() == etcdserverpb::AlarmRequest::ACTIVATE && req.alarm() != etcdserverpb::NONE) {
      changed = alarms_.insert(entry).second;
      batch.Put(engine_->cf(Column::kMeta), key, "");
    } else if (req.action() == etcdserverpb::AlarmRequest::DEACTIVATE) {
      changed = alarms_.erase(entry) > 0;
      batch.Delete(engine_->cf(Column::kMeta), key);
    }
  }
  Commit(&batch, index, revision());
  if (changed) {
    etcdserverpb::AlarmMember* m = resp->add_alarms();
    m->set_memberid(req.memberid());
    m->set_alarm(req.alarm());
  }
}

std::vector<etcdserverpb::AlarmMember> KvStore::Alarms() const {
  std::lock_guard<std::mutex> l(alarms_mu_);
  std::vector<etcdserverpb::AlarmMember> out;
  for (const auto& [member, type] : alarms_) {
    etcdserverpb::AlarmMember m;
    m.set_memberid(member);
    m.set_alarm(static_cast<etcdserverpb::AlarmType>(type));
    out.push_back(m);
  }
  return out;
}

bool KvStore::HasAlarm(etcdserverpb::AlarmType type) const {
  std::lock_guard<std::mutex> l(alarms_mu_);
  for (const auto& a : alarms_) {
    if (a.second == static_cast<int>(type)) return true;
  }
  return false;
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
    const int64_t main = static_cast<int64_t>(storage::GetBigEndian64(revs->key().data()));
    const int64_t sub = static_cast<int64_t>(storage::GetBigEndian64(revs->key().data() + 8));
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
      if (it->value().size() > 0 && it->value().data()[0] == kTombstone) continue;
    }
    crc = Crc32(crc, it->key().ToString());
    crc = Crc32(crc, it->value().ToString());
  }
  CF_CHECK(it->status().ok()) << "hash scan failed";
  *hash = crc;
  *hashed_revision = at;
  return absl::OkStatus();
}

absl::Status KvStore::Finish(uint64_t index, WriteTxn* txn, const absl::Status& status,
                             etcdserverpb::ResponseHeader* header) {
  txn->Settle(status.ok());
  if (!status.ok()) {
    // A request error changes nothing, but the entry counts as applied.
    MarkApplied(index);
    header->set_revision(staged_ ? staged_->revision : revision());
    return status;
  }
  const int64_t rev = txn->revision();
  header->set_revision(rev);
  std::vector<mvccpb::Event> events;
  if (observer_ && !txn->events().empty()) {
    events.reserve(txn->events().size());
    for (auto& e : txn->events()) events.push_back(std::move(*e));
  }
  if (staged_) {
    staged_->index = index;
    staged_->revision = rev;
    ++staged_->entries;
    if (!events.empty()) staged_->events.emplace_back(rev, std::move(events));
    if (staged_->entries >= kMaxStagedEntries || staged_->batch.GetDataSize() >= kMaxStagedBytes) {
      FlushStaged();
    }
    return absl::OkStatus();
  }
  Commit(txn->batch(), index, rev);
  if (!events.empty()) observer_(rev, std::move(events));
  return absl::OkStatus();
}

void KvStore::BeginBatch() {
  CF_CHECK(!staged_) << "BeginBatch inside a batch";
  staged_ = std::make_unique<Staged>();
  staged_->revision = revision();
}

void KvStore::CommitBatch() {
  FlushStaged();
  staged_.reset();
}

void KvStore::FlushStaged() {
  if (!staged_ || staged_->index == 0) return;
  Commit(&staged_->batch, staged_->index, staged_->revision);
  auto events = std::move(staged_->events);
  staged_->batch.Clear();
  staged_->latest.clear();
  staged_->events.clear();
  staged_->index = 0;
  staged_->entries = 0;
  if (observer_) {
    for (auto& [rev, evs] : events) observer_(rev, std::move(evs));
  }
}

absl::Status KvStore::Range(const etcdserverpb::RangeRequest& req,
                            etcdserverpb::RangeResponse* resp) const {
  std::shared_lock<std::shared_mutex> state(state_mu_);
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
