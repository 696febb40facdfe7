#include "chainfire/storage/table_check.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "chainfire/common/thread_name.h"
#include "rocksdb/options.h"
#include "rocksdb/sst_file_reader.h"
#include "spdlog/spdlog.h"

namespace chainfire::storage {
namespace {

struct FileStamp {
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const FileStamp& o) const {
    return std::tie(size, mtime_ns) == std::tie(o.size, o.mtime_ns);
  }
};

absl::StatusOr<FileStamp> Stamp(const std::filesystem::path& p) {
  std::error_code ec;
  FileStamp s;
  s.size = std::filesystem::file_size(p, ec);
  if (ec) return absl::NotFoundError(absl::StrCat(p.string(), ": ", ec.message()));
  const auto t = std::filesystem::last_write_time(p, ec);
  if (ec) return absl::NotFoundError(absl::StrCat(p.string(), ": ", ec.message()));
  s.mtime_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  return s;
}

std::map<std::string, FileStamp> ReadRecord(const std::filesystem::path& p) {
  std::map<std::string, FileStamp> out;
  std::ifstream in(p);
  std::string name;
  FileStamp s;
  while (in >> name >> s.size >> s.mtime_ns) out[name] = s;
  return out;  // a missing or unreadable record: every file is verified
}

absl::Status WriteRecord(const std::filesystem::path& p,
                         const std::map<std::string, FileStamp>& files) {
  std::ostringstream text;
  for (const auto& [name, s] : files) text << name << ' ' << s.size << ' ' << s.mtime_ns << '\n';
  const std::string tmp = p.string() + ".tmp";
  const std::string body = text.str();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot write ", tmp));
  bool ok = ::write(fd, body.data(), body.size()) == static_cast<ssize_t>(body.size());
  ok = ::fsync(fd) == 0 && ok;
  ::close(fd);
  std::error_code ec;
  if (ok) std::filesystem::rename(tmp, p, ec);
  if (!ok || ec) return absl::InternalError(absl::StrCat("cannot write ", p.string()));
  const int dir = ::open(p.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return absl::OkStatus();
}

// Reads every block of one table file against its checksum.
absl::Status VerifyFile(const std::string& path) {
  rocksdb::Options options;
  rocksdb::SstFileReader reader(options);
  rocksdb::Status s = reader.Open(path);
  if (s.ok()) s = reader.VerifyChecksum(rocksdb::ReadOptions());
  if (s.ok()) return absl::OkStatus();
  if (s.IsPathNotFound() || (s.IsIOError() && !std::filesystem::exists(path))) {
    return absl::NotFoundError(path);  // deleted by a compaction meanwhile
  }
  return absl::DataLossError(absl::StrCat(path, ": ", s.ToString()));
}

}  // namespace

absl::Status VerifyChangedTables(rocksdb::DB* db, const std::string& dir,
                                 TableCheckReport* report) {
  const std::filesystem::path record_path = std::filesystem::path(dir) / kVerifiedTablesFile;
  const std::map<std::string, FileStamp> verified = ReadRecord(record_path);
  std::vector<rocksdb::LiveFileMetaData> files;
  db->GetLiveFilesMetaData(&files);
  std::map<std::string, FileStamp> now;
  for (const rocksdb::LiveFileMetaData& f : files) {
    const std::filesystem::path path = std::filesystem::path(f.db_path) / f.name.substr(1);
    const std::string name = path.filename().string();
    auto stamp = Stamp(path);
    if (!stamp.ok()) return absl::DataLossError(stamp.status().message());
    if (auto it = verified.find(name); it != verified.end() && it->second == *stamp) {
      ++report->files_skipped;
    } else {
      if (absl::Status s = VerifyFile(path.string()); !s.ok()) {
        return absl::DataLossError(s.message());
      }
      ++report->files_verified;
      report->bytes_verified += stamp->size;
    }
    now[name] = *stamp;
  }
  if (now == verified) return absl::OkStatus();
  if (absl::Status s = WriteRecord(record_path, now); !s.ok()) {
    // The record only saves work at the next start (which then verifies everything again).
    spdlog::warn("{}; the next start verifies every table file", std::string(s.message()));
  }
  return absl::OkStatus();
}

TableChecker::TableChecker(rocksdb::DB* db, std::function<void(const absl::Status&)> on_damage)
    : db_(db), on_damage_(std::move(on_damage)) {
  thread_ = std::thread([this] {
    SetThreadName("cf-table-check");
    Run();
  });
}

TableChecker::~TableChecker() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void TableChecker::Run() {
  std::vector<rocksdb::LiveFileMetaData> files;
  db_->GetLiveFilesMetaData(&files);
  for (const rocksdb::LiveFileMetaData& f : files) {
    if (stop_) return;
    absl::Status s = VerifyFile(f.db_path + f.name);
    if (!s.ok() && !absl::IsNotFound(s)) {
      on_damage_(s);
      break;
    }
  }
  std::lock_guard<std::mutex> l(mu_);
  done_ = true;
  cv_.notify_all();
}

bool TableChecker::WaitUntilDone(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> l(mu_);
  return cv_.wait_for(l, timeout, [this] { return done_; });
}

}  // namespace chainfire::storage
