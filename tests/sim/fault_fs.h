// A fault-injecting RocksDB file system for the simulation (TEST ONLY), layered over RocksDB's
// in-memory file system so the production storage code (Engine, RaftLogStore) runs unchanged.
//
// Like the daemon's power-loss file system it holds every byte appended to a file since its
// last sync in memory; only a sync makes bytes durable (written to the file underneath). On
// top of that, under the simulation's control and from its seeded Random:
//   FailNextSync(): the next Sync/Fsync fails with an IOError and makes nothing durable;
//   Crash(): the process dies: each open file keeps its synced bytes plus, by chance, a random
//     prefix of its unsynced ones (which may cut a WAL record in half: a torn write); files
//     are then unusable until the next open;
//   FlipBit(): flips one bit of a synced data file (WAL, table file or MANIFEST) at rest.
// Thread-safety: none beyond what one RocksDB instance does on the simulation's thread and its
// background threads; the simulation calls Crash/FlipBit only with the database closed or
// being closed.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "chainfire/common/random.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"

namespace chainfire::sim {

class FaultFileSystem : public rocksdb::FileSystemWrapper {
 public:
  explicit FaultFileSystem(const std::shared_ptr<rocksdb::FileSystem>& base)
      : FileSystemWrapper(base) {}
  static const char* kClassName() { return "ChainFireSimFaultFileSystem"; }
  const char* Name() const override { return kClassName(); }

  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus RenameFile(const std::string& src, const std::string& dst,
                               const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;

  void FailNextSync() { fail_next_sync_ = true; }
  // Call before the database is destroyed; `keep_unsynced` is the chance that a file keeps a
  // random prefix of its unsynced bytes. Returns how many files were cut mid-way.
  int Crash(Random& rng, double keep_unsynced);
  // Call once the database is gone: files may be opened again.
  void Restart() { crashed_ = false; }
  // Flips a random bit of a random non-empty data file under `dir`; returns its description
  // ("<file> byte <n> bit <b>") or "" when there is no such file.
  std::string FlipBit(Random& rng, const std::string& dir);

  uint64_t syncs_failed() const { return syncs_failed_; }

 private:
  class File;
  friend class File;
  std::mutex mu_;
  std::map<std::string, File*> open_;  // by name: a deterministic order for Crash
  bool fail_next_sync_ = false;
  bool crashed_ = false;
  uint64_t syncs_failed_ = 0;
};

// An Env whose file system is `fs` (built over an in-memory Env's file system).
std::unique_ptr<rocksdb::Env> NewFaultEnv(const std::shared_ptr<FaultFileSystem>& fs);

}  // namespace chainfire::sim
