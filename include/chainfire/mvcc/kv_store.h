// KvStore: etcd's revisioned key-value model on the Engine's kv, kv_revs and meta columns.
//
// Every write request that changes something takes the next main revision; a DeleteRange that
// deletes n keys writes n tombstones at (rev, 0..n-1). All history is kept (compaction arrives
// with issue 4). create_revision, mod_revision and version follow etcd: a key's version counts
// modifications since its creation and a delete ends the generation.
//
// Value record (kv column): u8 flags (1 = tombstone), BE64 create_revision, BE64 version,
// BE64 lease, value bytes. kv_revs: RevisionKey(rev) -> user key. meta: "revision",
// "applied_index" (BE64), written in the same WriteBatch as the change they describe.
//
// Apply* methods: the apply thread only. Range, revision(), applied_index(): any thread; a
// read at revision R sees exactly the writes up to R (versions are immutable once written).
#pragma once

#include <atomic>
#include <map>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "chainfire/storage/engine.h"
#include "etcd/rpc.pb.h"

namespace chainfire::mvcc {

// etcd's errors, with its gRPC codes and messages (clients match on them).
absl::Status ErrFutureRevision();
absl::Status ErrKeyNotFound();
absl::Status ErrLeaseNotFound();

class KvStore {
 public:
  static absl::StatusOr<std::unique_ptr<KvStore>> Open(storage::Engine* engine);

  int64_t revision() const { return revision_.load(std::memory_order_acquire); }
  uint64_t applied_index() const { return applied_.load(std::memory_order_acquire); }

  // Applies a put from log entry `index`. A request error (etcd's) is returned and the entry
  // still counts as applied; a storage failure stops the process.
  absl::Status ApplyPut(uint64_t index, const etcdserverpb::PutRequest& req,
                        etcdserverpb::PutResponse* resp);
  absl::Status ApplyDeleteRange(uint64_t index, const etcdserverpb::DeleteRangeRequest& req,
                                etcdserverpb::DeleteRangeResponse* resp);
  // Applies a transaction: compares, then one branch, all at one revision; later operations
  // see earlier ones. Validation (limits, duplicate keys) happens before proposing.
  absl::Status ApplyTxn(uint64_t index, const etcdserverpb::TxnRequest& req,
                        etcdserverpb::TxnResponse* resp);
  // Records `index` as applied for an entry with no key-value effect.
  void MarkApplied(uint64_t index);
  // Records a member's published attributes (opaque bytes) with entry `index` applied.
  void ApplyMemberAttributes(uint64_t index, uint64_t member_id, const std::string& attributes);
  // Every member's last published attributes.
  std::map<uint64_t, std::string> LoadMemberAttributes() const;

  absl::Status Range(const etcdserverpb::RangeRequest& req,
                     etcdserverpb::RangeResponse* resp) const;

 private:
  explicit KvStore(storage::Engine* engine) : engine_(engine) {}
  class WriteTxn;
  absl::Status Finish(uint64_t index, WriteTxn* txn, const absl::Status& status,
                      etcdserverpb::ResponseHeader* header);
  // Calls fn for each live key in [key, range_end) (etcd's range conventions) at `rev`.
  template <typename Fn>
  void Scan(const std::string& key, const std::string& range_end, int64_t rev, Fn&& fn) const;
  bool Latest(const std::string& key, int64_t rev, mvccpb::KeyValue* kv) const;
  void Commit(rocksdb::WriteBatch* batch, uint64_t index, int64_t new_revision);

  storage::Engine* engine_;
  std::atomic<int64_t> revision_{1};
  std::atomic<uint64_t> applied_{0};
};

}  // namespace chainfire::mvcc
