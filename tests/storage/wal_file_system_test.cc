#include "chainfire/storage/wal_file_system.h"

#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "chainfire/storage/engine.h"
#include "chainfire/storage/wal_scan.h"
#include "gtest/gtest.h"
#include "rocksdb/write_batch.h"
#include "temp_dir.h"

namespace chainfire::storage {
namespace {

using chainfire::testing::TempDir;

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Whether any byte of [from, to) of the file lies in an extent the file system marks
// unwritten (preallocated, never written), by FIEMAP; nullopt where FIEMAP is not offered.
std::optional<bool> AnyUnwritten(const std::string& path, uint64_t from, uint64_t to) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return std::nullopt;
  constexpr int kExtents = 256;
  std::vector<char> buf(sizeof(fiemap) + kExtents * sizeof(fiemap_extent));
  auto* fm = reinterpret_cast<fiemap*>(buf.data());
  fm->fm_start = from;
  fm->fm_length = to - from;
  fm->fm_flags = FIEMAP_FLAG_SYNC;
  fm->fm_extent_count = kExtents;
  const int r = ioctl(fd, FS_IOC_FIEMAP, fm);
  ::close(fd);
  if (r != 0) return std::nullopt;
  for (uint32_t i = 0; i < fm->fm_mapped_extents; ++i) {
    if (fm->fm_extents[i].fe_flags & FIEMAP_EXTENT_UNWRITTEN) return true;
  }
  return false;
}

// Opens `name` in `dir` as RocksDB opens a WAL: log-write options, a preallocation block.
std::unique_ptr<rocksdb::FSWritableFile> OpenLikeAWal(WalFileSystem& fs, const std::string& path) {
  rocksdb::FileOptions options =
      fs.OptimizeForLogWrite(rocksdb::FileOptions(), rocksdb::DBOptions());
  std::unique_ptr<rocksdb::FSWritableFile> file;
  EXPECT_TRUE(fs.NewWritableFile(path, options, &file, nullptr).ok());
  file->SetPreallocationBlockSize(4 << 20);
  return file;
}

TEST(WalFileSystem, NamesOfWalFiles) {
  EXPECT_TRUE(WalFileSystem::IsWalFile("/d/000012.log"));
  EXPECT_TRUE(WalFileSystem::IsWalFile("7.log"));
  EXPECT_FALSE(WalFileSystem::IsWalFile("/d/LOG"));
  EXPECT_FALSE(WalFileSystem::IsWalFile("/d/.log"));
  EXPECT_FALSE(WalFileSystem::IsWalFile("/d/000012.sst"));
  EXPECT_FALSE(WalFileSystem::IsWalFile("/d/LOG.old.log"));
  EXPECT_FALSE(WalFileSystem::IsWalFile("/d/12.log.tmp"));
}

TEST(WalFileSystem, AppendsStayIntactZerosFollowThemAndClosingCutsTheFileToThem) {
  TempDir dir;
  std::filesystem::create_directories(dir.path());
  WalFileSystem fs(rocksdb::FileSystem::Default());
  const std::string path = dir.path() + "/000003.log";
  auto file = OpenLikeAWal(fs, path);
  std::string written;
  rocksdb::IOOptions io;
  for (int i = 0; i < 300; ++i) {
    std::string record(1000 + i, static_cast<char>('a' + i % 26));
    file->PrepareWrite(written.size(), record.size(), io, nullptr);
    ASSERT_TRUE(file->Append(record, io, nullptr).ok());
    written += record;
    if (i % 10 == 9) ASSERT_TRUE(file->Sync(io, nullptr).ok());
  }
  ASSERT_TRUE(file->Sync(io, nullptr).ok());
  // Size: the preallocated block; content: every append, then zeros only.
  const std::string content = ReadAll(path);
  ASSERT_EQ(content.size(), 4u << 20);
  EXPECT_EQ(content.substr(0, written.size()), written);
  EXPECT_EQ(content.find_first_not_of('\0', written.size()), std::string::npos);
  // The space right after the appends was written (zeros), so the next appends land in
  // written blocks; further on it is still only preallocated.
  const uint64_t next_block = (written.size() + 4095) / 4096 * 4096;
  if (auto unwritten = AnyUnwritten(path, next_block, written.size() + 64 * 1024)) {
    EXPECT_FALSE(*unwritten);
    EXPECT_EQ(AnyUnwritten(path, 3u << 20, 4u << 20), std::optional<bool>(true));
  }
  EXPECT_EQ(fs.AppendedBytes(path), std::optional<uint64_t>(written.size()));
  ASSERT_TRUE(file->Close(io, nullptr).ok());
  EXPECT_EQ(ReadAll(path), written);
  file.reset();
  EXPECT_EQ(fs.AppendedBytes(path), std::nullopt);
}

TEST(WalFileSystem, OtherFilesAreLeftAlone) {
  TempDir dir;
  std::filesystem::create_directories(dir.path());
  WalFileSystem fs(rocksdb::FileSystem::Default());
  const std::string path = dir.path() + "/000004.sst";
  auto file = OpenLikeAWal(fs, path);
  rocksdb::IOOptions io;
  const std::string data(5000, 'x');
  file->PrepareWrite(0, data.size(), io, nullptr);
  ASSERT_TRUE(file->Append(data, io, nullptr).ok());
  ASSERT_TRUE(file->Sync(io, nullptr).ok());
  // Preallocated (the options say so) but nothing was written after the data.
  if (auto unwritten = AnyUnwritten(path, 8192, 64 * 1024)) EXPECT_TRUE(*unwritten);
  EXPECT_EQ(fs.AppendedBytes(path), std::nullopt);
  ASSERT_TRUE(file->Close(io, nullptr).ok());
  EXPECT_EQ(ReadAll(path), data);
}

// The size a member reports and its quota counts: an open WAL counts what was written to it,
// not the space preallocated for it.
TEST(WalFileSystem, DiskSizeCountsTheWrittenPartOfTheOpenWal) {
  TempDir dir;
  auto engine = Engine::Open(dir.path());
  ASSERT_TRUE(engine.ok()) << engine.status();
  for (int i = 0; i < 50; ++i) {
    rocksdb::WriteBatch wb;
    wb.Put((*engine)->cf(Column::kMeta), absl::StrCat("k", i), std::string(700, 'v'));
    ASSERT_TRUE((*engine)->Write(&wb, /*sync=*/true).ok());
  }
  uint64_t files = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir.path())) {
    files += f.file_size();
  }
  const int64_t size = (*engine)->DiskSize();
  EXPECT_GE(size, 50 * 700);
  EXPECT_LT(size + (1 << 20), static_cast<int64_t>(files)) << "the WAL is preallocated";
}

// Runs, in a child process, an engine on `dir` that writes `n` synced keys k0.. (700 bytes
// each) and is then killed (no close, no flush: what kill -9 leaves).
void WriteSyncedThenKill(const std::string& dir, int n) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto engine = Engine::Open(dir);
    if (!engine.ok()) _exit(2);
    for (int i = 0; i < n; ++i) {
      rocksdb::WriteBatch wb;
      wb.Put((*engine)->cf(Column::kMeta), absl::StrCat("k", i), std::string(700, 'v'));
      if (!(*engine)->Write(&wb, /*sync=*/true).ok()) _exit(3);
    }
    ::kill(::getpid(), SIGKILL);
    _exit(4);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
}

// The newest WAL of `dir`, and where its records end (zeros follow: the keys end in 'v').
std::pair<std::string, size_t> NewestWalAndEnd(const std::string& dir) {
  std::string newest;
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    if (WalFileSystem::IsWalFile(f.path().string()) && f.path().string() > newest) {
      newest = f.path().string();
    }
  }
  const std::string content = ReadAll(newest);
  const size_t last = content.find_last_not_of('\0');
  return {newest, last == std::string::npos ? 0 : last + 1};
}

void ExpectKeys(Engine& engine, int n) {
  for (int i = 0; i < n; ++i) {
    auto v = engine.Get(Column::kMeta, absl::StrCat("k", i));
    ASSERT_TRUE(v.ok()) << i << ": " << v.status();
    EXPECT_EQ(*v, std::string(700, 'v'));
  }
  EXPECT_FALSE(engine.Get(Column::kMeta, absl::StrCat("k", n)).ok());
}

// A member killed with its WAL open (zeros after the last record, the file at its preallocated
// size) reopens with every synced write and nothing else.
TEST(WalFileSystem, AKilledEngineReopensWithEverySyncedWrite) {
  TempDir dir;
  constexpr int kSynced = 400;
  WriteSyncedThenKill(dir.path(), kSynced);
  const auto [wal, end] = NewestWalAndEnd(dir.path());
  EXPECT_GT(std::filesystem::file_size(wal), end + 64 * 1024) << "preallocated zeros follow";
  auto engine = Engine::Open(dir.path());
  ASSERT_TRUE(engine.ok()) << engine.status();
  ExpectKeys(**engine, kSynced);
}

// What a power loss in the middle of writing the next record leaves: its first sectors, then
// zeros. Cut at start-up (it was never synced); every synced write stays.
TEST(WalFileSystem, ATornLastRecordIsCutAndEverySyncedWriteStays) {
  TempDir dir;
  constexpr int kSynced = 200;
  WriteSyncedThenKill(dir.path(), kSynced);
  const auto [wal, end] = NewestWalAndEnd(dir.path());
  {
    std::fstream f(wal, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(end));
    const char header[] = {'\x11', '\x22', '\x33', '\x44', '\xdc', '\x05', '\x01'};  // 1500 bytes
    f.write(header, sizeof header);
    f << std::string(600, 'z');  // the rest never reached the disk: zeros
  }
  auto damage = ScanWalFile(wal);
  ASSERT_TRUE(damage.ok() && damage->has_value());
  EXPECT_EQ((*damage)->offset, end);
  EXPECT_TRUE((*damage)->at_tail);
  EXPECT_TRUE((*damage)->torn);
  auto engine = Engine::Open(dir.path());
  ASSERT_TRUE(engine.ok()) << engine.status();
  ExpectKeys(**engine, kSynced);
  engine->reset();
  // Cut where the torn record began (RocksDB deletes the file once its records are flushed).
  if (std::filesystem::exists(wal)) EXPECT_LE(std::filesystem::file_size(wal), end);
}

// A last record that is whole but damaged (a flipped byte, no zero sector) is not a torn write:
// refused, never cut.
TEST(WalFileSystem, ADamagedWholeLastRecordIsRefused) {
  TempDir dir;
  WriteSyncedThenKill(dir.path(), 200);
  const auto [wal, end] = NewestWalAndEnd(dir.path());
  {
    std::fstream f(wal, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(end - 100));  // inside the last key's value
    f.put('w');
  }
  auto damage = ScanWalFile(wal);
  ASSERT_TRUE(damage.ok() && damage->has_value());
  EXPECT_TRUE((*damage)->at_tail);
  EXPECT_FALSE((*damage)->torn);
  const auto size = std::filesystem::file_size(wal);
  auto engine = Engine::Open(dir.path());
  ASSERT_FALSE(engine.ok());
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(engine.status().message().find("(at the tail)"), std::string::npos) << engine.status();
  EXPECT_EQ(std::filesystem::file_size(wal), size) << "nothing cut";
}

}  // namespace
}  // namespace chainfire::storage
