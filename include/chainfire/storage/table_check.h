// Table-file checks: RocksDB's block checksums of a data dir's SST files, at startup and after.
//
// At startup (VerifyChangedTables) only files that are new or changed since they were last
// verified are read: a record in the data dir (kVerifiedTablesFile) lists each verified file
// with its size and modification time (nanoseconds), and any write through the file system
// changes one of them. So a restart reads what was written since the last start, not the whole
// data set, and a file damaged by any write is still refused before the member serves.
// Damage that bypasses the file system's timestamps (media errors, a restored timestamp) is
// caught by the background pass (TableChecker), which reads every live file once after
// startup, and by RocksDB itself, which checks each block's checksum whenever it reads one.
// Thread-safety: VerifyChangedTables is a plain function; TableChecker's methods may be called
// from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "rocksdb/db.h"

namespace chainfire::storage {

// The record of verified table files, in the data dir: lines "<file name> <size> <mtime ns>".
inline constexpr char kVerifiedTablesFile[] = "CHAINFIRE-VERIFIED-TABLES";

// What one startup check did.
struct TableCheckReport {
  int files_verified = 0;  // read and checked now
  int files_skipped = 0;   // unchanged since they were verified
  uint64_t bytes_verified = 0;
};

// Verifies every live table file of `db` (opened on the real file system at `dir`) that the
// record does not list unchanged, then rewrites the record (atomically) with every live file
// (a failure to write it is logged, not returned). DataLoss naming the file and offset on
// damage (the record is then left as it was).
absl::Status VerifyChangedTables(rocksdb::DB* db, const std::string& dir, TableCheckReport* report);

// Reads every live table file of `db` once, on a thread of its own, one file at a time;
// `on_damage` runs (on that thread) with DataLoss naming the file when one is damaged. The
// destructor stops the pass after the file being read.
class TableChecker {
 public:
  TableChecker(rocksdb::DB* db, std::function<void(const absl::Status&)> on_damage);
  ~TableChecker();
  TableChecker(const TableChecker&) = delete;
  TableChecker& operator=(const TableChecker&) = delete;
  // Waits up to `timeout` for the pass to end (every file read, or damage reported); returns
  // whether it ended.
  bool WaitUntilDone(std::chrono::milliseconds timeout);

 private:
  void Run();
  rocksdb::DB* db_;
  std::function<void(const absl::Status&)> on_damage_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace chainfire::storage
