// The write transaction of one applied entry (Put, DeleteRange, Txn with its compares).
#include <map>

#include "chainfire/common/check.h"
#include "chainfire/mvcc/layout.h"
#include "kv_store_internal.h"

namespace chainfire::mvcc {

using internal::InRange;
using internal::Writes;
using layout::EncodeValueRecord;
using layout::LeaseKeyIndex;
using storage::Column;

KvStore::WriteTxn::WriteTxn(KvStore* store)
    : store_(store),
      staged_(store->staged_.get()),
      base_(staged_ != nullptr ? staged_->revision : store->revision()) {
  if (staged_ != nullptr) staged_->batch.SetSavePoint();
}

KvStore::WriteTxn::WriteTxn(KvStore* store, int64_t base)
    : store_(store), staged_(nullptr), base_(base), read_only_(true) {}

void KvStore::WriteTxn::Settle(bool keep) {
  if (staged_ == nullptr) return;
  if (!keep) {
    CF_CHECK(staged_->batch.RollbackToSavePoint().ok()) << "staged batch lost its save point";
    return;
  }
  CF_CHECK(staged_->batch.PopSavePoint().ok()) << "staged batch lost its save point";
  for (auto& [k, v] : overlay_) staged_->latest.insert_or_assign(k, std::move(v));
}

absl::Status KvStore::WriteTxn::Put(const etcdserverpb::PutRequest& req,
                                    etcdserverpb::PutResponse* resp) {
  internal::Ops().put->Add();
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
  if (!exists) ++live_keys_delta_;
  batch()->Put(
      store_->engine_->cf(Column::kKv), VersionKey(req.key(), rev),
      EncodeValueRecord(false, kv.create_revision(), kv.version(), kv.lease(), kv.value()));
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

absl::Status KvStore::WriteTxn::DeleteRange(const etcdserverpb::DeleteRangeRequest& req,
                                            etcdserverpb::DeleteRangeResponse* resp) {
  internal::Ops().del->Add();
  std::vector<mvccpb::KeyValue> doomed = Scan(req.key(), req.range_end());
  live_keys_delta_ -= static_cast<int64_t>(doomed.size());
  for (mvccpb::KeyValue& kv : doomed) {
    const Revision rev = NextRevision();
    batch()->Put(store_->engine_->cf(Column::kKv), VersionKey(kv.key(), rev),
                 EncodeValueRecord(true, 0, 0, 0, ""));
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

absl::Status KvStore::WriteTxn::Range(const etcdserverpb::RangeRequest& req,
                                      etcdserverpb::RangeResponse* resp) {
  if (req.revision() > 0) {
    // The history read is counted by KvStore::Range.
    if (req.revision() > base_) return ErrFutureRevision();
    if (req.revision() < store_->compact_revision()) return ErrCompacted();
    // History is not changed by this txn; the state lock is held by ReadTxn's caller or not
    // needed (the apply thread is the only one that replaces the state).
    return store_->RangeUnlocked(req, resp);
  }
  internal::Ops().range->Add();
  std::vector<mvccpb::KeyValue> kvs = Scan(req.key(), req.range_end());
  FinishRange(req, std::move(kvs), resp);
  resp->mutable_header()->set_revision(revision());
  return absl::OkStatus();
}

absl::Status KvStore::WriteTxn::Txn(const etcdserverpb::TxnRequest& req,
                                    etcdserverpb::TxnResponse* resp) {
  internal::Ops().txn->Add();
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

Revision KvStore::WriteTxn::NextRevision() {
  CF_CHECK(!read_only_) << "a write in a read-only txn";
  wrote_ = true;
  return Revision{base_ + 1, sub_++};
}

bool KvStore::WriteTxn::Latest(const std::string& key, mvccpb::KeyValue* kv) {
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

std::vector<mvccpb::KeyValue> KvStore::WriteTxn::Scan(const std::string& key,
                                                      const std::string& range_end) {
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

bool KvStore::WriteTxn::Compare(const etcdserverpb::Compare& c) {
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

bool KvStore::WriteTxn::CompareKv(const etcdserverpb::Compare& c, const mvccpb::KeyValue& kv) {
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

}  // namespace chainfire::mvcc
