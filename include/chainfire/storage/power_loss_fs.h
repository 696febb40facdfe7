// TEST ONLY. A RocksDB file system that makes SIGKILL behave like a power loss.
//
// SIGKILL alone loses nothing the kernel's page cache holds, so it proves nothing about fsync.
// This wrapper keeps every byte appended to a file since its last Sync/Fsync in process memory
// and writes it to the real file only on Sync, Fsync, RangeSync or Close. When the process is
// killed, the unsynced bytes die with it: exactly what a power loss would take. File creation,
// rename and deletion go straight through (treated as durable metadata).
//
// `lying_wal_sync` (TEST ONLY, to show the lanes can fail): Sync of a WAL file ("*.log")
// reports success without writing anything, so acknowledged writes are lost at a kill.
//
// Selected only by the daemon's --testing-power-loss-fs flags; never the default.
// Thread-safety: as RocksDB requires of a FileSystem (files are used by one writer each).
#pragma once

#include <memory>

#include "rocksdb/env.h"
#include "rocksdb/file_system.h"

namespace chainfire::storage {

class PowerLossFileSystem : public rocksdb::FileSystemWrapper {
 public:
  PowerLossFileSystem(const std::shared_ptr<rocksdb::FileSystem>& base, bool lying_wal_sync)
      : FileSystemWrapper(base), lying_wal_sync_(lying_wal_sync) {}

  static const char* kClassName() { return "ChainFirePowerLossFileSystem"; }
  const char* Name() const override { return kClassName(); }

  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                      const rocksdb::FileOptions& opts,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override;

 private:
  bool lying_wal_sync_;
};

// An Env whose file system is a PowerLossFileSystem over the default one.
std::unique_ptr<rocksdb::Env> NewPowerLossEnv(bool lying_wal_sync);

}  // namespace chainfire::storage
