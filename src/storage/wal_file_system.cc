#include "chainfire/storage/wal_file_system.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

namespace chainfire::storage {

// A WAL file that keeps the next kZeroAheadBytes past its appends written with zeros, inside
// the space RocksDB preallocated (the file's size, as WalFileSystem extends it).
class ZeroAheadWalFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  ZeroAheadWalFile(std::unique_ptr<rocksdb::FSWritableFile> file, int fd, WalFileSystem* fs,
                   std::string path)
      : FSWritableFileOwnerWrapper(std::move(file)),
        fd_(fd),
        fs_(fs),
        path_(std::move(path)),
        appended_(std::make_shared<std::atomic<uint64_t>>(0)) {
    std::lock_guard<std::mutex> l(fs_->mu_);
    fs_->open_[path_] = appended_;
  }
  ~ZeroAheadWalFile() override {
    CloseZeroing();
    std::lock_guard<std::mutex> l(fs_->mu_);
    auto it = fs_->open_.find(path_);
    if (it != fs_->open_.end() && it->second == appended_) fs_->open_.erase(it);
  }

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->Append(data, options, dbg);
    if (s.ok()) Appended(data.size());
    return s;
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->Append(data, options, info, dbg);
    if (s.ok()) Appended(data.size());
    return s;
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     rocksdb::IODebugContext* dbg) override {
    CloseZeroing();  // not how RocksDB writes a WAL: leave such a file alone
    return target()->PositionedAppend(data, offset, options, dbg);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     const rocksdb::DataVerificationInfo& info,
                                     rocksdb::IODebugContext* dbg) override {
    CloseZeroing();
    return target()->PositionedAppend(data, offset, options, info, dbg);
  }
  rocksdb::IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
    CloseZeroing();
    return target()->Truncate(size, options, dbg);
  }
  rocksdb::IOStatus Close(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    CloseZeroing();
    return target()->Close(options, dbg);
  }

 private:
  void Appended(size_t n) {
    end_ += n;
    appended_->store(end_, std::memory_order_relaxed);
    if (fd_ < 0 || zeroed_ >= end_ + WalFileSystem::kZeroAheadBytes / 2) return;
    // The zeros go past everything appended, never over it, and only inside the file's size
    // (the preallocated space), so the size never changes here.
    struct stat st;
    if (fstat(fd_, &st) != 0) {
      CloseZeroing();
      return;
    }
    const uint64_t from = std::max(zeroed_, end_);
    const uint64_t to = std::min<uint64_t>(from + WalFileSystem::kZeroAheadBytes, st.st_size);
    static const char kZeros[64 << 10] = {};
    for (uint64_t at = from; at < to;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(sizeof kZeros, to - at));
      const ssize_t w = pwrite(fd_, kZeros, n, static_cast<off_t>(at));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {  // only an optimisation: the appends work as before without it
        CloseZeroing();
        return;
      }
      at += static_cast<uint64_t>(w);
    }
    zeroed_ = std::max(zeroed_, to);
  }
  void CloseZeroing() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  int fd_;  // our own descriptor of the file, for the zeros; -1: no more zeroing
  WalFileSystem* fs_;
  const std::string path_;
  const std::shared_ptr<std::atomic<uint64_t>> appended_;  // end_, for AppendedBytes
  uint64_t end_ = 0;                                       // bytes appended
  uint64_t zeroed_ = 0;  // zeros written up to here (from end_ at the time)
};

WalFileSystem::WalFileSystem(std::shared_ptr<rocksdb::FileSystem> base)
    : FileSystemWrapper(std::move(base)) {}

rocksdb::FileOptions WalFileSystem::OptimizeForLogWrite(
    const rocksdb::FileOptions& file_options, const rocksdb::DBOptions& db_options) const {
  rocksdb::FileOptions o = target()->OptimizeForLogWrite(file_options, db_options);
  o.fallocate_with_keep_size = false;
  return o;
}

bool WalFileSystem::IsWalFile(const std::string& path) {
  const std::string name = std::filesystem::path(path).filename().string();
  constexpr size_t kSuffix = 4;  // ".log"
  if (name.size() <= kSuffix || name.compare(name.size() - kSuffix, kSuffix, ".log") != 0) {
    return false;
  }
  return std::all_of(name.begin(), name.end() - kSuffix,
                     [](char c) { return c >= '0' && c <= '9'; });
}

rocksdb::IOStatus WalFileSystem::NewWritableFile(const std::string& fname,
                                                 const rocksdb::FileOptions& options,
                                                 std::unique_ptr<rocksdb::FSWritableFile>* result,
                                                 rocksdb::IODebugContext* dbg) {
  rocksdb::IOStatus s = target()->NewWritableFile(fname, options, result, dbg);
  if (!s.ok() || !IsWalFile(fname) || options.use_direct_writes) return s;
  const int fd = ::open(fname.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return s;  // no zeros ahead then; the file works as RocksDB made it
  *result = std::make_unique<ZeroAheadWalFile>(std::move(*result), fd, this, fname);
  return s;
}

std::optional<uint64_t> WalFileSystem::AppendedBytes(const std::string& path) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = open_.find(path);
  if (it == open_.end()) return std::nullopt;
  return it->second->load(std::memory_order_relaxed);
}

namespace {
const std::shared_ptr<WalFileSystem>& DefaultShared() {
  static const auto* fs = new std::shared_ptr<WalFileSystem>(
      std::make_shared<WalFileSystem>(rocksdb::FileSystem::Default()));
  return *fs;
}
}  // namespace

WalFileSystem& WalFileSystem::Default() { return *DefaultShared(); }

rocksdb::Env* WalFileSystem::DefaultEnv() {
  static rocksdb::Env* env = rocksdb::NewCompositeEnv(DefaultShared()).release();
  return env;
}

}  // namespace chainfire::storage
