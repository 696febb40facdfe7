// WalFileSystem: the real file system with two changes for RocksDB's write-ahead log files
// (names "<number>.log"), both to make each synced append cheaper:
//
// * A WAL's preallocated space (RocksDB reserves each new WAL's expected size up front) counts
//   in the file's size from the start (fallocate without FALLOC_FL_KEEP_SIZE, as etcd's WAL
//   preallocates its segments), so a synced append does not grow the file.
// * The appends are kept within blocks already written: ahead of them the file is filled with
//   zeros, kZeroAheadBytes at a time, and those zeros reach the disk with the next sync. On
//   ext4 a preallocated block is an "unwritten" extent, and the first write to one changes the
//   inode, so an fdatasync after it must write the inode as well as the data and wait for both;
//   after an append into written blocks it writes the data only (a 1,500-byte append and
//   fdatasync: 45 µs of CPU and 140 µs of wall time into preallocated blocks, 35 µs and 105 µs
//   into written ones, docs/performance.md).
//
// Zeros are written only beyond everything appended so far, on the appending thread, before the
// appends that reach them (RocksDB appends to a WAL from one thread at a time), so they never
// cover data. The zeros past the last record are what RocksDB's recovery (and ScanWalFile) take
// for the end of the log; a WAL that is closed is cut to its data. A record that a crash left
// half written before those zeros is a bad record to RocksDB, not the end of the file:
// Engine::Open cuts such a torn record (CutTornWalTail, wal_scan.h) and opens again.
// Thread-safety: as rocksdb::FileSystem.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "rocksdb/env.h"
#include "rocksdb/file_system.h"

namespace chainfire::storage {

class WalFileSystem : public rocksdb::FileSystemWrapper {
 public:
  static constexpr uint64_t kZeroAheadBytes = 1 << 20;

  explicit WalFileSystem(std::shared_ptr<rocksdb::FileSystem> base);
  const char* Name() const override { return "ChainFireWalFileSystem"; }
  rocksdb::FileOptions OptimizeForLogWrite(const rocksdb::FileOptions& file_options,
                                           const rocksdb::DBOptions& db_options) const override;
  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;

  // Whether `path` names a RocksDB WAL file ("<digits>.log").
  static bool IsWalFile(const std::string& path);

  // The bytes appended so far to the WAL file `path` while it is open for writing through this
  // file system (its size counts its preallocated space too); nullopt for any other file.
  std::optional<uint64_t> AppendedBytes(const std::string& path) const;

  // The process's one, over the real file system, never destroyed; and an Env over it.
  static WalFileSystem& Default();
  static rocksdb::Env* DefaultEnv();

 private:
  friend class ZeroAheadWalFile;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<std::atomic<uint64_t>>> open_;  // guarded by mu_
};

}  // namespace chainfire::storage
