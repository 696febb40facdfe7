// KvStore: etcd's revisioned key-value model on the Engine's kv, kv_revs and meta columns.
//
// Every write request that changes something takes the next main revision; a DeleteRange that
// deletes n keys writes n tombstones at (rev, 0..n-1). History is kept until a compaction
// (ApplyCompact), after which superseded versions below it are removed. create_revision,
// mod_revision and version follow etcd: a key's version counts modifications since its
// creation and a delete ends the generation. The records are defined in layout.h and
// key_encoding.h; the applied index and revision are written in the same WriteBatch as the
// change they describe.
//
// Thread-safety: Apply*, BeginBatch/CommitBatch, MarkApplied, CompactStep and ReplaceState on
// the apply thread only. Range, ReadEvents, HashKV, the lease/alarm queries, revision(),
// applied_index(): any thread; a read at revision R sees exactly the writes up to R (versions
// are immutable once written), and never a state half replaced by ReplaceState.
//
// Sources by job: kv_store.cc (open, load, apply entry points), apply_batch.cc (staged
// batches), write_txn.cc (Put/DeleteRange/Txn), reads.cc (Range, events), compaction.cc,
// hash.cc, tables.cc (leases, alarms, members).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "chainfire/storage/engine.h"
#include "etcd/rpc.pb.h"

namespace chainfire::mvcc {

// etcd's errors, with its gRPC codes and messages (clients match on them).
absl::Status ErrFutureRevision();
absl::Status ErrKeyNotFound();
absl::Status ErrLeaseNotFound();
absl::Status ErrCompacted();
absl::Status ErrNoSpace();
absl::Status ErrLeaseExists();

struct KvStoreOptions {
  // True: a background thread removes superseded versions after a compaction. False (the
  // simulation): nothing is removed until the owner calls CompactStep().
  bool background_compaction = true;
  // TEST ONLY: physical compaction drops a deleted key's tombstone but keeps the versions
  // below it, so the key comes back (a bug the simulation must catch).
  bool testing_compaction_resurrects = false;
};

class KvStore {
 public:
  static absl::StatusOr<std::unique_ptr<KvStore>> Open(storage::Engine* engine,
                                                       KvStoreOptions options = {});

  ~KvStore();

  int64_t revision() const { return revision_.load(std::memory_order_acquire); }
  // Reads below this revision fail with ErrCompacted; 0 when never compacted.
  int64_t compact_revision() const { return compact_revision_.load(std::memory_order_acquire); }
  uint64_t applied_index() const { return applied_.load(std::memory_order_acquire); }
  // Keys that exist (not deleted) at revision(): etcd_debugging_mvcc_keys_total (short of the
  // keys at start-up until the compactor thread has counted them, a second per million). From
  // storage when the state is loaded, then kept by the writes. Any thread.
  int64_t live_keys() const { return live_keys_.load(std::memory_order_relaxed); }

  // Batching (apply thread). Between BeginBatch() and CommitBatch(), Put, DeleteRange, Txn and
  // MarkApplied are staged in one WriteBatch (later entries see earlier ones) and become
  // visible together at CommitBatch: revision(), applied_index(), reads and the observer's
  // events. Any other Apply* first commits what is staged. A large batch commits itself early.
  // A staged entry's response must not reach a client before CommitBatch returns. Outside a
  // batch every Apply* is written at once.
  void BeginBatch();
  void CommitBatch();

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
  // Applies a compaction to `rev` from log entry `index`: reads below `rev` fail from now on,
  // and a background thread removes the superseded versions in bounded slices (writes are
  // never blocked behind it). ErrFutureRevision / ErrCompacted for a bad revision.
  absl::Status ApplyCompact(uint64_t index, int64_t rev, etcdserverpb::CompactionResponse* resp);
  // Calls `done` (on the compactor thread, or at once) when versions below `rev` are gone.
  void WhenPhysicallyCompacted(int64_t rev, std::function<void()> done);
  // Without background compaction: removes one bounded slice of superseded versions on the
  // caller's thread (apply thread). Returns false when there was nothing to remove.
  bool CompactStep();
  // etcd's HashKV: a CRC-32 of the logical MVCC state up to `rev` (0: the current revision),
  // the same on every member at the same revision whatever its physical compaction progress.
  absl::Status HashKV(int64_t rev, uint32_t* hash, int64_t* hashed_revision) const;
  // Leases (the replicated part: ID and granted TTL; expiry is the leader's, see
  // member::Member and node::Lessor).
  absl::Status ApplyLeaseGrant(uint64_t index, int64_t id, int64_t ttl,
                               etcdserverpb::LeaseGrantResponse* resp);
  // Deletes every key attached to the lease at one revision, then the lease.
  absl::Status ApplyLeaseRevoke(uint64_t index, int64_t id,
                                etcdserverpb::LeaseRevokeResponse* resp);
  // Lease ID -> granted TTL. Any thread.
  std::map<int64_t, int64_t> Leases() const;
  bool HasLease(int64_t id) const;
  std::vector<std::string> LeaseKeys(int64_t id) const;

  // Applies an alarm change (ACTIVATE / DEACTIVATE) from log entry `index`; the alarms are
  // replicated state, the same on every member. `resp` lists the alarms changed.
  void ApplyAlarm(uint64_t index, const etcdserverpb::AlarmRequest& req,
                  etcdserverpb::AlarmResponse* resp);
  // The active alarms. Any thread.
  std::vector<etcdserverpb::AlarmMember> Alarms() const;
  bool HasAlarm(etcdserverpb::AlarmType type) const;

  // Reads the events of revisions [from, to] for keys in [key, range_end) from storage, in
  // revision order, stopping between two revisions once about `max_events` were read. Returns
  // the last revision fully covered (to when done). Any thread.
  int64_t ReadEvents(int64_t from, int64_t to, const std::string& key, const std::string& range_end,
                     bool prev_kv, size_t max_events, std::vector<mvccpb::Event>* out) const;
  // Called on the apply thread after each committed write with its revision and events (the
  // watch hub). Set once, before applying starts.
  void SetObserver(std::function<void(int64_t, std::vector<mvccpb::Event>)> observer) {
    observer_ = std::move(observer);
  }
  // Records `index` as applied for an entry with no key-value effect.
  void MarkApplied(uint64_t index);
  // Records a member's published attributes (opaque bytes) with entry `index` applied.
  void ApplyMemberAttributes(uint64_t index, uint64_t member_id, const std::string& attributes);
  // Every member's last published attributes.
  std::map<uint64_t, std::string> LoadMemberAttributes() const;
  // Records the auth store's new persisted record (auth::AuthStore::Record) with entry `index`
  // applied; it is part of the state snapshots and backups carry.
  void ApplyAuthState(uint64_t index, const std::string& record);
  // The auth store's record ("" when none was ever written).
  absl::StatusOr<std::string> LoadAuthState() const;

  absl::Status Range(const etcdserverpb::RangeRequest& req,
                     etcdserverpb::RangeResponse* resp) const;
  // A read-only txn (TxnIsReadOnly) evaluated at revision() without the log, as etcd serves
  // one: the same compares, ranges, errors and answer as if it were applied at this revision.
  // Any thread. The caller makes it linearizable (a read index) unless every range in it is
  // serializable.
  absl::Status ReadTxn(const etcdserverpb::TxnRequest& req, etcdserverpb::TxnResponse* resp) const;

  // Replaces the whole state (a Raft snapshot install): stops the background compactor, runs
  // `install` (which rewrites the kv, kv_revs and meta columns), reloads every cached value
  // (revision, applied index, leases, alarms, compaction progress) and restarts the compactor.
  // Apply thread only.
  absl::Status ReplaceState(const std::function<absl::Status()>& install);

 private:
  // Reads every cached value (revision, applied index, compaction progress, tables) from disk.
  absl::Status Load();
  // Reads the lease and alarm tables (tables.cc).
  absl::Status LoadTables();
  void StartCompactor();
  void StopCompactor();
  // Adds the live keys at count_revision_ (set by Load) to live_keys_; stops early when
  // StopCompactor is called (compactor thread, or Load's caller without background threads).
  void CountLiveKeys();
  int64_t count_revision_ = 0;  // Load's revision, until counted
  std::atomic<bool> count_stop_{false};
  explicit KvStore(storage::Engine* engine, KvStoreOptions options);
  // One slice of physical compaction, if any is due; completes its waiters. False when none.
  bool CompactOnce();
  class WriteTxn;
  struct Staged;
  // Writes what is staged (if anything); batching continues.
  void FlushStaged();
  absl::Status Finish(uint64_t index, WriteTxn* txn, const absl::Status& status,
                      etcdserverpb::ResponseHeader* header);
  // Calls fn for each live key in [key, range_end) (etcd's range conventions) at `rev`.
  void Scan(const std::string& key, const std::string& range_end, int64_t rev,
            absl::FunctionRef<void(mvccpb::KeyValue)> fn) const;
  bool Latest(const std::string& key, int64_t rev, mvccpb::KeyValue* kv) const;
  // Range without taking state_mu_ (the caller holds it, or is the apply thread).
  absl::Status RangeUnlocked(const etcdserverpb::RangeRequest& req,
                             etcdserverpb::RangeResponse* resp) const;
  void Commit(rocksdb::WriteBatch* batch, uint64_t index, int64_t new_revision);

  storage::Engine* engine_;
  const KvStoreOptions options_;
  std::unique_ptr<Staged> staged_;  // apply thread only: set between BeginBatch and CommitBatch
  void CompactorLoop();
  // Deletes superseded versions with revisions in (from, to]; returns the last revision done.
  int64_t CompactSlice(int64_t from, int64_t to, int64_t limit);

  std::function<void(int64_t, std::vector<mvccpb::Event>)> observer_;
  mutable std::mutex leases_mu_;
  std::map<int64_t, int64_t> leases_;  // guarded by leases_mu_
  mutable std::mutex alarms_mu_;
  std::set<std::pair<uint64_t, int>> alarms_;  // (member, AlarmType); guarded by alarms_mu_
  std::atomic<int64_t> revision_{1};
  std::atomic<int64_t> compact_revision_{0};
  std::mutex compact_mu_;
  std::condition_variable compact_cv_;
  int64_t compact_target_ = 0;     // guarded by compact_mu_
  int64_t compacted_through_ = 0;  // guarded by compact_mu_: physically done
  bool stopping_ = false;          // guarded by compact_mu_
  std::vector<std::pair<int64_t, std::function<void()>>> compact_waiters_;  // compact_mu_
  std::thread compactor_;
  std::atomic<uint64_t> applied_{0};
  std::atomic<int64_t> live_keys_{0};  // written by the apply thread (and Load)
  // Readers (Range, ReadEvents, HashKV, LeaseKeys) hold it shared; ReplaceState exclusive, so
  // a read never sees a state half replaced by a snapshot install.
  mutable std::shared_mutex state_mu_;
};

}  // namespace chainfire::mvcc
