// The replicated tables beside the keys: leases (ID -> granted TTL, and their attached keys),
// alarms and members' published attributes.

#include "chainfire/mvcc/layout.h"
#include "kv_store_internal.h"

namespace chainfire::mvcc {

using storage::Column;

absl::Status KvStore::LoadTables() {
  std::unique_ptr<rocksdb::Iterator> it(
      engine_->db()->NewIterator(rocksdb::ReadOptions(), engine_->cf(Column::kMeta)));
  {
    std::lock_guard<std::mutex> l(alarms_mu_);
    alarms_.clear();
    const std::string prefix = layout::kAlarmPrefix;
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      uint64_t member = 0;
      int type = 0;
      if (layout::DecodeAlarmKey(it->key().ToStringView(), &member, &type)) {
        alarms_.emplace(member, type);
      }
    }
  }
  {
    std::lock_guard<std::mutex> l(leases_mu_);
    leases_.clear();
    const std::string prefix = layout::kLeasePrefix;
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      int64_t id = 0, ttl = 0;
      if (layout::DecodeLease(it->key().ToStringView(), it->value().ToStringView(), &id, &ttl)) {
        leases_[id] = ttl;
      }
    }
  }
  if (!it->status().ok()) return storage::FromRocks(it->status(), "loading leases and alarms");
  return absl::OkStatus();
}

void KvStore::ApplyMemberAttributes(uint64_t index, uint64_t member_id,
                                    const std::string& attributes) {
  FlushStaged();
  rocksdb::WriteBatch batch;
  batch.Put(engine_->cf(Column::kMeta), layout::MemberKey(member_id), attributes);
  Commit(&batch, index, revision());
}

void KvStore::ApplyAuthState(uint64_t index, const std::string& record) {
  FlushStaged();
  rocksdb::WriteBatch batch;
  batch.Put(engine_->cf(Column::kMeta), layout::kAuthKey, record);
  Commit(&batch, index, revision());
}

absl::StatusOr<std::string> KvStore::LoadAuthState() const {
  auto r = engine_->Get(Column::kMeta, layout::kAuthKey);
  if (absl::IsNotFound(r.status())) return std::string();
  return r;
}

std::map<uint64_t, std::string> KvStore::LoadMemberAttributes() const {
  std::map<uint64_t, std::string> out;
  std::unique_ptr<rocksdb::Iterator> it(
      engine_->db()->NewIterator(rocksdb::ReadOptions(), engine_->cf(Column::kMeta)));
  const std::string prefix = layout::kMemberPrefix;
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    uint64_t id = 0;
    if (layout::DecodeMemberKey(it->key().ToStringView(), &id)) out[id] = it->value().ToString();
  }
  return out;
}

absl::Status KvStore::ApplyLeaseGrant(uint64_t index, int64_t id, int64_t ttl,
                                      etcdserverpb::LeaseGrantResponse* resp) {
  FlushStaged();
  if (HasLease(id)) {
    MarkApplied(index);
    return ErrLeaseExists();
  }
  rocksdb::WriteBatch batch;
  batch.Put(engine_->cf(Column::kMeta), layout::LeaseKey(id), storage::BigEndian64(ttl));
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
    txn.batch()->Delete(engine_->cf(Column::kMeta), layout::LeaseKeyIndex(id, key));
  }
  txn.batch()->Delete(engine_->cf(Column::kMeta), layout::LeaseKey(id));
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
  const std::string prefix = layout::LeaseKeysPrefix(id);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    keys.push_back(it->key().ToString().substr(prefix.size()));
  }
  return keys;
}

void KvStore::ApplyAlarm(uint64_t index, const etcdserverpb::AlarmRequest& req,
                         etcdserverpb::AlarmResponse* resp) {
  FlushStaged();
  const std::string key = layout::AlarmKey(req.memberid(), static_cast<int>(req.alarm()));
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

}  // namespace chainfire::mvcc
