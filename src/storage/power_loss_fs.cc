#include "chainfire/storage/power_loss_fs.h"

#include <mutex>
#include <string>

namespace chainfire::storage {
namespace {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

// Holds appended bytes in memory until a sync (or close) writes them through.
class PowerLossFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  PowerLossFile(std::unique_ptr<rocksdb::FSWritableFile> target, bool lying_sync)
      : FSWritableFileOwnerWrapper(std::move(target)), lying_sync_(lying_sync) {}
  ~PowerLossFile() override {
    std::lock_guard<std::mutex> l(mu_);
    if (!closed_) WriteThrough(IOOptions(), nullptr);
  }

  IOStatus Append(const Slice& data, const IOOptions&, IODebugContext*) override {
    std::lock_guard<std::mutex> l(mu_);
    pending_.append(data.data(), data.size());
    return IOStatus::OK();
  }
  IOStatus Append(const Slice& data, const IOOptions& options, const rocksdb::DataVerificationInfo&,
                  IODebugContext* dbg) override {
    return Append(data, options, dbg);
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& options,
                            IODebugContext* dbg) override {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (offset != target()->GetFileSize(options, dbg) + pending_.size()) {
        return IOStatus::NotSupported("positioned append out of order");
      }
    }
    return Append(data, options, dbg);
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& options,
                            const rocksdb::DataVerificationInfo&, IODebugContext* dbg) override {
    return PositionedAppend(data, offset, options, dbg);
  }
  IOStatus Flush(const IOOptions&, IODebugContext*) override {
    return IOStatus::OK();  // the page cache would survive a kill; our memory does not
  }
  IOStatus Sync(const IOOptions& options, IODebugContext* dbg) override {
    if (lying_sync_) return IOStatus::OK();
    std::lock_guard<std::mutex> l(mu_);
    IOStatus s = WriteThrough(options, dbg);
    return s.ok() ? target()->Sync(options, dbg) : s;
  }
  IOStatus Fsync(const IOOptions& options, IODebugContext* dbg) override {
    if (lying_sync_) return IOStatus::OK();
    std::lock_guard<std::mutex> l(mu_);
    IOStatus s = WriteThrough(options, dbg);
    return s.ok() ? target()->Fsync(options, dbg) : s;
  }
  IOStatus RangeSync(uint64_t, uint64_t, const IOOptions& options, IODebugContext* dbg) override {
    return Sync(options, dbg);
  }
  IOStatus Close(const IOOptions& options, IODebugContext* dbg) override {
    std::lock_guard<std::mutex> l(mu_);
    closed_ = true;
    IOStatus s = WriteThrough(options, dbg);
    IOStatus c = target()->Close(options, dbg);
    return s.ok() ? c : s;
  }
  IOStatus Truncate(uint64_t size, const IOOptions& options, IODebugContext* dbg) override {
    std::lock_guard<std::mutex> l(mu_);
    IOStatus s = WriteThrough(options, dbg);
    return s.ok() ? target()->Truncate(size, options, dbg) : s;
  }
  uint64_t GetFileSize(const IOOptions& options, IODebugContext* dbg) override {
    std::lock_guard<std::mutex> l(mu_);
    return target()->GetFileSize(options, dbg) + pending_.size();
  }
  // Every method holds mu_: a Sync may run beside an Append (RocksDB's SyncWAL).
  bool IsSyncThreadSafe() const override { return true; }

 private:
  IOStatus WriteThrough(const IOOptions& options, IODebugContext* dbg) {  // needs mu_
    if (pending_.empty()) return IOStatus::OK();
    IOStatus s = target()->Append(pending_, options, dbg);
    if (s.ok()) s = target()->Flush(options, dbg);
    pending_.clear();
    return s;
  }

  const bool lying_sync_;
  std::mutex mu_;
  bool closed_ = false;  // guarded by mu_
  std::string pending_;  // guarded by mu_
};

bool IsWal(const std::string& fname) {
  return fname.size() > 4 && fname.compare(fname.size() - 4, 4, ".log") == 0;
}

}  // namespace

IOStatus PowerLossFileSystem::NewWritableFile(const std::string& fname,
                                              const rocksdb::FileOptions& opts,
                                              std::unique_ptr<rocksdb::FSWritableFile>* result,
                                              IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSWritableFile> file;
  IOStatus s = target()->NewWritableFile(fname, opts, &file, dbg);
  if (s.ok()) {
    *result = std::make_unique<PowerLossFile>(std::move(file), lying_wal_sync_ && IsWal(fname));
  }
  return s;
}

IOStatus PowerLossFileSystem::ReopenWritableFile(const std::string& fname,
                                                 const rocksdb::FileOptions& opts,
                                                 std::unique_ptr<rocksdb::FSWritableFile>* result,
                                                 IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSWritableFile> file;
  IOStatus s = target()->ReopenWritableFile(fname, opts, &file, dbg);
  if (s.ok()) {
    *result = std::make_unique<PowerLossFile>(std::move(file), lying_wal_sync_ && IsWal(fname));
  }
  return s;
}

IOStatus PowerLossFileSystem::ReuseWritableFile(const std::string& fname,
                                                const std::string& old_fname,
                                                const rocksdb::FileOptions& opts,
                                                std::unique_ptr<rocksdb::FSWritableFile>* result,
                                                IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSWritableFile> file;
  IOStatus s = target()->ReuseWritableFile(fname, old_fname, opts, &file, dbg);
  if (s.ok()) {
    *result = std::make_unique<PowerLossFile>(std::move(file), lying_wal_sync_ && IsWal(fname));
  }
  return s;
}

std::unique_ptr<rocksdb::Env> NewPowerLossEnv(bool lying_wal_sync) {
  return rocksdb::NewCompositeEnv(
      std::make_shared<PowerLossFileSystem>(rocksdb::FileSystem::Default(), lying_wal_sync));
}

}  // namespace chainfire::storage
