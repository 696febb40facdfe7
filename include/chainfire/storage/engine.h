// Engine: the one RocksDB instance of a member, with its column families.
//
// Column families (all share RocksDB's single WAL, which is never disabled); their records are
// defined in one header each:
//   raft_log, raft_state  storage/raft_format.h (log entries; hard state, snapshot, identity)
//   kv, kv_revs, meta     mvcc/layout.h and mvcc/key_encoding.h (MVCC versions, revision
//                         index, applied index, leases, alarms, members); every kv key ends in
//                         a 16-byte revision and the rest is the column's bloom-filtered prefix
// The meta column's "format_version" (kFormatVersion, below) is the Engine's own: a data dir of
// another format is refused at Open.
// Recovery tolerates only a torn WAL tail (kTolerateCorruptedTailRecords) and verifies the WAL
// files against the manifest; any other corruption makes Open fail. Open also verifies the
// checksums of every table file that is new or changed since it was last verified
// (storage/table_check.h); CheckTablesInBackground reads the others after startup.
// Thread-safety: thread-safe (RocksDB is); the Engine must outlive its users.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "chainfire/storage/table_check.h"
#include "rocksdb/db.h"

namespace chainfire::storage {

enum class Column { kRaftLog = 0, kRaftState, kKv, kKvRevisions, kMeta };

// The on-disk format this build reads and writes.
inline constexpr int kFormatVersion = 1;

class Engine {
 public:
  // Opens (creating if empty) the data dir `dir`. Refuses a data dir of another format version
  // or with corruption beyond a torn WAL tail, with a message naming what is wrong.
  // `env` (optional, e.g. RocksDB's in-memory Env for the simulation) must outlive the Engine.
  // `background_compaction` false (the simulation): RocksDB starts no compaction of its own, so
  // its files change only on the caller's thread and a seeded run replays exactly.
  static absl::StatusOr<std::unique_ptr<Engine>> Open(const std::string& dir,
                                                      rocksdb::Env* env = nullptr,
                                                      bool background_compaction = true);
  ~Engine();

  rocksdb::DB* db() const { return db_.get(); }
  rocksdb::ColumnFamilyHandle* cf(Column c) const { return handles_[static_cast<int>(c)]; }
  const std::string& dir() const { return dir_; }
  // True when Open created the data dir (first boot).
  bool created() const { return created_; }
  // Reads the table files Open did not verify (unchanged since an earlier check) on a thread
  // of its own; `on_damage` runs there with DataLoss naming the file if one is damaged (the
  // owner must then stop). Nothing to do when Open verified every file. Call once.
  void CheckTablesInBackground(std::function<void(const absl::Status&)> on_damage);

  // Writes `batch`; with `sync`, returns only after the WAL is fsynced. Synced writes are timed
  // as etcd_disk_wal_fsync_duration_seconds, unsynced ones as
  // etcd_disk_backend_commit_duration_seconds unless `backend_commit` is false (the Raft log's).
  absl::Status Write(rocksdb::WriteBatch* batch, bool sync, bool backend_commit = true);
  absl::StatusOr<std::string> Get(Column c, const std::string& key) const;  // NotFound if absent
  // Writes every column's memtable to table files, so the next open replays no WAL (a clean
  // shutdown calls it: the restart is then quicker). Blocking.
  absl::Status FlushAll();
  // Compacts every column family fully (drops deleted data from the files). Blocking.
  absl::Status CompactAll();
  // Bytes of the database files (SST and WAL; of an open WAL, what was written to it, not its
  // preallocated space).
  int64_t DiskSize() const;
  // A RocksDB integer property summed over the column families (0 where one has none), e.g.
  // "rocksdb.estimate-live-data-size", "rocksdb.estimate-pending-compaction-bytes".
  uint64_t IntProperty(const std::string& name) const;
  // Microseconds user writes have waited in RocksDB's write stalls since the database opened
  // ("db.user_write_stall_micros" of the "rocksdb.dbstats" map; 0 if RocksDB does not say).
  uint64_t WriteStallMicros() const;

 private:
  Engine() = default;
  std::string dir_;
  bool created_ = false;
  int unchecked_tables_ = 0;  // live table files Open skipped as verified before
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::unique_ptr<TableChecker> checker_;  // declared after db_: destroyed before it
};

// The kv column's keys end in this many bytes of revision; the rest is the key's prefix.
inline constexpr size_t kKvRevisionSuffixBytes = 16;

// Read options for iterators on the kv column. OneKeyRead: for an iterator that, after each
// Seek to a version key, looks only at versions of that one user key (it becomes invalid past
// them; files without the key are skipped by their bloom filters). OrderedRead: for every other
// iterator (range scans, whole-column walks); other columns may use either.
rocksdb::ReadOptions OneKeyRead();
rocksdb::ReadOptions OrderedRead();

// Converts a RocksDB status to an absl::Status with the same meaning.
absl::Status FromRocks(const rocksdb::Status& s, const std::string& context);

// Big-endian fixed-width encodings: they sort bytewise in numeric order.
void PutBigEndian64(std::string* out, uint64_t v);
uint64_t GetBigEndian64(const char* p);
std::string BigEndian64(uint64_t v);

}  // namespace chainfire::storage
