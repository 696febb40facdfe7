// KvStore's private parts shared by its source files (kv_store.cc: opening, loading, apply
// entry points; apply_batch.cc: the staged batch; write_txn.cc: the write transaction;
// reads.cc: ranges and events; compaction.cc; hash.cc; tables.cc: leases, alarms, members).
// Not a public header: include it only from src/mvcc.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "chainfire/metrics/registry.h"
#include "chainfire/mvcc/key_encoding.h"
#include "chainfire/mvcc/kv_store.h"
#include "rocksdb/slice.h"
#include "rocksdb/write_batch.h"

namespace chainfire::mvcc {

// Filters, sorts and limits the live keys of a range into `resp` (etcd's rules).
void FinishRange(const etcdserverpb::RangeRequest& req, std::vector<mvccpb::KeyValue> all,
                 etcdserverpb::RangeResponse* resp);

namespace internal {

// etcd's etcd_mvcc_{put,delete,range,txn}_total: operations this member's store executed
// (every member applies every write). One relaxed atomic add each.
struct OpCounters {
  metrics::Counter *put, *del, *range, *txn;
};
const OpCounters& Ops();

// etcd's range_end conventions: "" = the key alone; "\0" = every key >= key.
inline bool InRange(const std::string& k, const std::string& key, const std::string& range_end) {
  if (range_end.empty()) return k == key;
  if (range_end.size() == 1 && range_end[0] == '\0') return k >= key;
  return k >= key && k < range_end;
}

// Decodes a value record into kv (except key and mod_revision); false for a tombstone. A
// record too short to decode stops the process (corrupt store).
bool DecodeRecord(const rocksdb::Slice& v, mvccpb::KeyValue* kv);

// A key's latest version as written by a txn or a batch (nullopt: deleted there).
using Writes = std::map<std::string, std::optional<mvccpb::KeyValue>>;

// A batch commits itself once it holds this many entries or bytes.
inline constexpr size_t kMaxStagedEntries = 1000;
inline constexpr size_t kMaxStagedBytes = 8 << 20;

}  // namespace internal

// Entries applied in a batch (BeginBatch .. CommitBatch) and not written yet.
struct KvStore::Staged {
  rocksdb::WriteBatch batch;
  // The latest version of each key the staged entries wrote (nullopt: deleted).
  internal::Writes latest;
  std::vector<std::pair<int64_t, std::vector<mvccpb::Event>>> events;  // by revision, in order
  uint64_t index = 0;    // the last staged entry; 0 when nothing is staged
  int64_t revision = 0;  // the revision after the staged entries
  size_t entries = 0;
  int64_t live_keys_delta = 0;  // keys created minus keys deleted by the staged entries
};

// Applies the writes of one log entry: every change lands in one WriteBatch at revision
// base+1 (sub-revisions 0, 1, ... in order), and later operations of a txn see earlier ones.
// In a batch, the entry writes into the staged WriteBatch (rolled back if the entry fails) and
// sees the staged entries' writes. Apply thread only; one per entry.
class KvStore::WriteTxn {
 public:
  // Applies on the apply thread, into the store's staged batch if one is open.
  explicit WriteTxn(KvStore* store);
  // Read-only, at revision `base`, on any thread: no staged batch; a Put or DeleteRange on it
  // is a bug (checked).
  WriteTxn(KvStore* store, int64_t base);

  int64_t revision() const { return wrote_ ? base_ + 1 : base_; }
  rocksdb::WriteBatch* batch() { return staged_ != nullptr ? &staged_->batch : &batch_; }
  std::vector<std::unique_ptr<mvccpb::Event>>& events() { return events_; }
  // Keys this entry created minus keys it deleted.
  int64_t live_keys_delta() const { return live_keys_delta_; }

  // In a batch: keeps (true) or drops (false) what this entry wrote into the staged batch.
  void Settle(bool keep);

  absl::Status Put(const etcdserverpb::PutRequest& req, etcdserverpb::PutResponse* resp);
  absl::Status DeleteRange(const etcdserverpb::DeleteRangeRequest& req,
                           etcdserverpb::DeleteRangeResponse* resp);
  absl::Status Range(const etcdserverpb::RangeRequest& req, etcdserverpb::RangeResponse* resp);
  absl::Status Txn(const etcdserverpb::TxnRequest& req, etcdserverpb::TxnResponse* resp);

 private:
  Revision NextRevision();
  bool Latest(const std::string& key, mvccpb::KeyValue* kv);
  // Live keys in the range as this txn sees them (its own writes included), in key order.
  std::vector<mvccpb::KeyValue> Scan(const std::string& key, const std::string& range_end);
  bool Compare(const etcdserverpb::Compare& c);
  static bool CompareKv(const etcdserverpb::Compare& c, const mvccpb::KeyValue& kv);

  KvStore* store_;
  Staged* staged_;
  const int64_t base_;
  int64_t sub_ = 0;
  bool wrote_ = false;
  const bool read_only_ = false;
  int64_t live_keys_delta_ = 0;
  rocksdb::WriteBatch batch_;
  internal::Writes overlay_;
  std::vector<std::unique_ptr<mvccpb::Event>> events_;  // in revision order
};

}  // namespace chainfire::mvcc
