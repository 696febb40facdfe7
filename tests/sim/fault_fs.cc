#include "fault_fs.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"

namespace chainfire::sim {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

class FaultFileSystem::File : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  File(FaultFileSystem* fs, std::string name, std::unique_ptr<rocksdb::FSWritableFile> target)
      : FSWritableFileOwnerWrapper(std::move(target)), fs_(fs), name_(std::move(name)) {
    std::lock_guard<std::mutex> l(fs_->mu_);
    fs_->open_[name_] = this;
  }
  ~File() override {
    std::lock_guard<std::mutex> l(fs_->mu_);
    if (!closed_ && !fs_->crashed_) WriteThrough(IOOptions(), nullptr);
    auto it = fs_->open_.find(name_);
    if (it != fs_->open_.end() && it->second == this) fs_->open_.erase(it);
  }

  IOStatus Append(const Slice& data, const IOOptions&, IODebugContext*) override {
    std::lock_guard<std::mutex> l(fs_->mu_);
    if (fs_->crashed_) return IOStatus::IOError("simulated crash");
    pending_.append(data.data(), data.size());
    return IOStatus::OK();
  }
  IOStatus Append(const Slice& data, const IOOptions& options, const rocksdb::DataVerificationInfo&,
                  IODebugContext* dbg) override {
    return Append(data, options, dbg);
  }
  IOStatus PositionedAppend(const Slice&, uint64_t, const IOOptions&, IODebugContext*) override {
    return IOStatus::NotSupported("positioned append");
  }
  IOStatus PositionedAppend(const Slice&, uint64_t, const IOOptions&,
                            const rocksdb::DataVerificationInfo&, IODebugContext*) override {
    return IOStatus::NotSupported("positioned append");
  }
  IOStatus Flush(const IOOptions&, IODebugContext*) override { return IOStatus::OK(); }
  IOStatus Sync(const IOOptions& options, IODebugContext* dbg) override {
    std::lock_guard<std::mutex> l(fs_->mu_);
    if (fs_->crashed_) return IOStatus::IOError("simulated crash");
    if (fs_->fail_next_sync_) {
      fs_->fail_next_sync_ = false;
      ++fs_->syncs_failed_;
      return IOStatus::IOError("simulated fsync failure");
    }
    IOStatus s = WriteThrough(options, dbg);
    return s.ok() ? target()->Sync(options, dbg) : s;
  }
  IOStatus Fsync(const IOOptions& options, IODebugContext* dbg) override {
    return Sync(options, dbg);
  }
  IOStatus RangeSync(uint64_t, uint64_t, const IOOptions& options, IODebugContext* dbg) override {
    return Sync(options, dbg);
  }
  IOStatus Close(const IOOptions& options, IODebugContext* dbg) override {
    std::lock_guard<std::mutex> l(fs_->mu_);
    closed_ = true;
    IOStatus s = fs_->crashed_ ? IOStatus::OK() : WriteThrough(options, dbg);
    IOStatus c = target()->Close(options, dbg);
    return s.ok() ? c : s;
  }
  IOStatus Truncate(uint64_t size, const IOOptions& options, IODebugContext* dbg) override {
    std::lock_guard<std::mutex> l(fs_->mu_);
    if (fs_->crashed_) return IOStatus::IOError("simulated crash");
    IOStatus s = WriteThrough(options, dbg);
    return s.ok() ? target()->Truncate(size, options, dbg) : s;
  }
  uint64_t GetFileSize(const IOOptions& options, IODebugContext* dbg) override {
    std::lock_guard<std::mutex> l(fs_->mu_);
    return target()->GetFileSize(options, dbg) + pending_.size();
  }
  // Every method holds fs_->mu_: a Sync may run beside an Append (RocksDB's SyncWAL).
  bool IsSyncThreadSafe() const override { return true; }

  // With fs_->mu_ held: the crash keeps `keep` bytes of what was not synced.
  void KeepPrefix(size_t keep) {
    if (keep > 0) {
      target()->Append(Slice(pending_.data(), keep), IOOptions(), nullptr);
      target()->Flush(IOOptions(), nullptr);
    }
    pending_.clear();
  }
  size_t pending() const { return pending_.size(); }

 private:
  IOStatus WriteThrough(const IOOptions& options, IODebugContext* dbg) {
    if (pending_.empty()) return IOStatus::OK();
    IOStatus s = target()->Append(pending_, options, dbg);
    if (s.ok()) s = target()->Flush(options, dbg);
    pending_.clear();
    return s;
  }

  FaultFileSystem* fs_;
  const std::string name_;
  bool closed_ = false;
  std::string pending_;
};

IOStatus FaultFileSystem::NewWritableFile(const std::string& fname,
                                          const rocksdb::FileOptions& opts,
                                          std::unique_ptr<rocksdb::FSWritableFile>* result,
                                          IODebugContext* dbg) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (crashed_) return IOStatus::IOError("simulated crash");
  }
  std::unique_ptr<rocksdb::FSWritableFile> file;
  IOStatus s = target()->NewWritableFile(fname, opts, &file, dbg);
  if (s.ok()) *result = std::make_unique<File>(this, fname, std::move(file));
  return s;
}

IOStatus FaultFileSystem::ReopenWritableFile(const std::string& fname,
                                             const rocksdb::FileOptions& opts,
                                             std::unique_ptr<rocksdb::FSWritableFile>* result,
                                             IODebugContext* dbg) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (crashed_) return IOStatus::IOError("simulated crash");
  }
  std::unique_ptr<rocksdb::FSWritableFile> file;
  IOStatus s = target()->ReopenWritableFile(fname, opts, &file, dbg);
  if (s.ok()) *result = std::make_unique<File>(this, fname, std::move(file));
  return s;
}

IOStatus FaultFileSystem::RenameFile(const std::string& src, const std::string& dst,
                                     const IOOptions& options, IODebugContext* dbg) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (crashed_) return IOStatus::IOError("simulated crash");
  }
  return target()->RenameFile(src, dst, options, dbg);
}

int FaultFileSystem::Crash(Random& rng, double keep_unsynced) {
  std::lock_guard<std::mutex> l(mu_);
  crashed_ = true;
  fail_next_sync_ = false;
  int torn = 0;
  for (auto& [name, file] : open_) {
    const size_t n = file->pending();
    size_t keep = 0;
    if (n > 0 && rng.Chance(keep_unsynced)) keep = rng.Uniform(n + 1);
    if (keep > 0 && keep < n) ++torn;
    file->KeepPrefix(keep);
  }
  return torn;
}

std::string FaultFileSystem::FlipBit(Random& rng, const std::string& dir) {
  std::vector<std::string> children;
  if (!target()->GetChildren(dir, IOOptions(), &children, nullptr).ok()) return "";
  std::sort(children.begin(), children.end());
  std::vector<std::pair<std::string, uint64_t>> candidates;
  for (const std::string& c : children) {
    const bool data_file = c.ends_with(".log") || c.ends_with(".sst") || c.starts_with("MANIFEST");
    uint64_t size = 0;
    if (!data_file || !target()->GetFileSize(dir + "/" + c, IOOptions(), &size, nullptr).ok() ||
        size == 0) {
      continue;
    }
    candidates.emplace_back(dir + "/" + c, size);
  }
  if (candidates.empty()) return "";
  const auto& [path, size] = candidates[rng.Uniform(candidates.size())];
  std::unique_ptr<rocksdb::FSSequentialFile> in;
  if (!target()->NewSequentialFile(path, rocksdb::FileOptions(), &in, nullptr).ok()) return "";
  std::string bytes(size, '\0');
  Slice got;
  if (!in->Read(size, IOOptions(), &got, bytes.data(), nullptr).ok() || got.size() != size) {
    return "";
  }
  bytes.assign(got.data(), got.size());
  in.reset();
  const uint64_t byte = rng.Uniform(size);
  const int bit = static_cast<int>(rng.Uniform(8));
  bytes[byte] = static_cast<char>(bytes[byte] ^ (1 << bit));
  std::unique_ptr<rocksdb::FSWritableFile> out;
  if (!target()->NewWritableFile(path, rocksdb::FileOptions(), &out, nullptr).ok()) return "";
  out->Append(bytes, IOOptions(), nullptr);
  out->Sync(IOOptions(), nullptr);
  out->Close(IOOptions(), nullptr);
  return absl::StrCat(path, " byte ", byte, " bit ", bit);
}

std::unique_ptr<rocksdb::Env> NewFaultEnv(const std::shared_ptr<FaultFileSystem>& fs) {
  return rocksdb::NewCompositeEnv(fs);
}

}  // namespace chainfire::sim
