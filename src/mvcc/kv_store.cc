#include "chainfire/mvcc/kv_store.h"

#include <type_traits>

#include "absl/strings/str_cat.h"
#include "chainfire/common/check.h"
#include "chainfire/mvcc/layout.h"
#include "kv_store_internal.h"

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

KvStore::KvStore(storage::Engine* engine, KvStoreOptions options)
    : engine_(engine), options_(options) {}

absl::StatusOr<std::unique_ptr<KvStore>> KvStore::Open(storage::Engine* engine,
                                                       KvStoreOptions options) {
  auto store = std::unique_ptr<KvStore>(new KvStore(engine, options));
  if (absl::Status s = store->Load(); !s.ok()) return s;
  store->StartCompactor();
  return store;
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
  revision_ = 1;
  applied_ = 0;
  compact_revision_ = 0;
  {
    std::lock_guard<std::mutex> l(compact_mu_);
    compacted_through_ = 0;
  }
  auto read64 = [&](const char* key, auto* out) -> absl::Status {
    auto r = engine_->Get(Column::kMeta, key);
    if (absl::IsNotFound(r.status())) return absl::OkStatus();
    if (!r.ok()) return r.status();
    if (r->size() != 8)
      return absl::DataLossError(absl::StrCat("meta record ", key, " is corrupt"));
    *out = static_cast<std::remove_pointer_t<decltype(out)>>(storage::GetBigEndian64(r->data()));
    return absl::OkStatus();
  };
  int64_t revision = 1, compact = 0, compacted_through = 0;
  uint64_t applied = 0;
  for (absl::Status s :
       {read64(layout::kRevisionKey, &revision), read64(layout::kAppliedKey, &applied),
        read64(layout::kCompactKey, &compact),
        read64(layout::kCompactDoneKey, &compacted_through)}) {
    if (!s.ok()) return s;
  }
  revision_ = revision;
  applied_ = applied;
  compact_revision_ = compact;
  {
    std::lock_guard<std::mutex> l(compact_mu_);
    compacted_through_ = compacted_through;
  }
  // etcd rebuilds its key index at start and counts the keys it finds; so does this, but on
  // the compactor's thread before it compacts (a scan of every key, seconds at millions of
  // keys, must not hold up the start): applies add their deltas meanwhile, the count at
  // `revision` is added when it is done. Without background threads (the simulation), here.
  live_keys_.store(0, std::memory_order_relaxed);
  count_revision_ = revision;
  if (!options_.background_compaction) CountLiveKeys();
  return LoadTables();
}

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

namespace internal {

const OpCounters& Ops() {
  static const OpCounters ops = [] {
    metrics::Registry& r = metrics::Default();
    return OpCounters{
        r.AddCounter("etcd_mvcc_put_total", "Total number of puts seen by this member.")->Get(),
        r.AddCounter("etcd_mvcc_delete_total", "Total number of deletes seen by this member.")
            ->Get(),
        r.AddCounter("etcd_mvcc_range_total", "Total number of ranges seen by this member.")->Get(),
        r.AddCounter("etcd_mvcc_txn_total", "Total number of txns seen by this member.")->Get()};
  }();
  return ops;
}

}  // namespace internal

}  // namespace chainfire::mvcc
