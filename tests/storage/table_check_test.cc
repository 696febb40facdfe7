// Table-file checks on a real RocksDB data dir: what startup reads, what it skips, and that
// damage is caught either way (refused at open, or by the background pass).
#include "chainfire/storage/table_check.h"

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "chainfire/storage/engine.h"
#include "gtest/gtest.h"
#include "rocksdb/write_batch.h"
#include "temp_dir.h"

namespace chainfire::storage {
namespace {

using chainfire::testing::TempDir;

// Writes `n` keys into the kv column and flushes them into a table file of their own.
void WriteTable(Engine* e, int first, int n) {
  rocksdb::WriteBatch b;
  for (int i = first; i < first + n; ++i) {
    b.Put(e->cf(Column::kKv), "key-" + std::to_string(i) + std::string(16, 'r'), "value");
  }
  ASSERT_TRUE(e->Write(&b, true).ok());
  ASSERT_TRUE(e->db()->Flush(rocksdb::FlushOptions(), e->cf(Column::kKv)).ok());
}

std::vector<std::filesystem::path> Tables(const std::string& dir) {
  std::vector<std::filesystem::path> out;
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    if (f.path().extension() == ".sst") out.push_back(f.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void FlipByte(const std::filesystem::path& p, std::streamoff at) {
  std::fstream f(p, std::ios::binary | std::ios::in | std::ios::out);
  f.seekg(at);
  const char c = static_cast<char>(f.get());
  f.seekp(at);
  f.put(static_cast<char>(c ^ 0x5a));
}

TEST(TableCheck, StartupReadsOnlyNewOrChangedTables) {
  TempDir dir;
  {
    auto e = std::move(*Engine::Open(dir.path()));
    WriteTable(e.get(), 0, 100);
    WriteTable(e.get(), 100, 100);
  }
  rocksdb::DB* db = nullptr;
  TableCheckReport first, second, third;
  {
    auto e = std::move(*Engine::Open(dir.path()));  // verifies both files, records them
    db = e->db();
    ASSERT_TRUE(VerifyChangedTables(db, dir.path(), &first).ok());
    EXPECT_EQ(first.files_verified, 0) << "Open verified and recorded them already";
    EXPECT_GE(first.files_skipped, 2);
    WriteTable(e.get(), 200, 100);  // a new file since the last check
    ASSERT_TRUE(VerifyChangedTables(e->db(), dir.path(), &second).ok());
    EXPECT_EQ(second.files_verified, 1);
    EXPECT_EQ(second.files_skipped, first.files_skipped);
    EXPECT_GT(second.bytes_verified, 0u);
  }
  // Without the record, everything is read again.
  std::filesystem::remove(std::filesystem::path(dir.path()) / kVerifiedTablesFile);
  auto e = std::move(*Engine::Open(dir.path()));
  std::filesystem::remove(std::filesystem::path(dir.path()) / kVerifiedTablesFile);
  ASSERT_TRUE(VerifyChangedTables(e->db(), dir.path(), &third).ok());
  EXPECT_EQ(third.files_skipped, 0);
  EXPECT_EQ(third.files_verified, first.files_skipped + 1);
}

TEST(TableCheck, ChangedFileIsRefusedAtOpenAndHiddenDamageByTheBackgroundPass) {
  TempDir dir;
  {
    auto e = std::move(*Engine::Open(dir.path()));
    WriteTable(e.get(), 0, 200);
  }
  ASSERT_TRUE(Engine::Open(dir.path()).ok()) << "intact: opens (and records the file)";
  const std::filesystem::path sst = Tables(dir.path()).front();

  // Damage written through the file system changes the modification time: refused at open.
  FlipByte(sst, 100);
  auto refused = Engine::Open(dir.path());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(refused.status().message().find(sst.filename().string()), std::string::npos)
      << refused.status().message();

  // Repaired, opened (recorded again), then damaged with the old timestamp put back (as a media
  // error would leave it): Open skips the file, the background pass finds the damage.
  FlipByte(sst, 100);
  ASSERT_TRUE(Engine::Open(dir.path()).ok());
  const auto recorded = std::filesystem::last_write_time(sst);
  FlipByte(sst, 100);
  std::filesystem::last_write_time(sst, recorded);
  auto e = Engine::Open(dir.path());
  ASSERT_TRUE(e.ok()) << "the file looks unchanged: not read at open";
  std::mutex mu;
  std::condition_variable cv;
  std::optional<absl::Status> found;
  (*e)->CheckTablesInBackground([&](const absl::Status& s) {
    std::lock_guard<std::mutex> l(mu);
    found = s;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> l(mu);
  ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(30), [&] { return found.has_value(); }));
  EXPECT_EQ(found->code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(found->message().find(sst.filename().string()), std::string::npos) << found->message();
}

TEST(TableCheck, AnUnwritableRecordOnlyCostsTheNextStartAFullCheck) {
  TempDir dir;
  {
    auto e = std::move(*Engine::Open(dir.path()));
    WriteTable(e.get(), 0, 100);
  }
  const std::filesystem::path record = std::filesystem::path(dir.path()) / kVerifiedTablesFile;
  std::filesystem::remove(record);
  std::filesystem::create_directory(record.string() + ".tmp");  // the record cannot be written
  auto e = Engine::Open(dir.path());
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_FALSE(std::filesystem::exists(record));
  TableCheckReport report;
  ASSERT_TRUE(VerifyChangedTables((*e)->db(), dir.path(), &report).ok());
  EXPECT_GE(report.files_verified, 1);
  EXPECT_EQ(report.files_skipped, 0);
}

TEST(TableCheck, BackgroundPassOverIntactFilesReportsNothing) {
  TempDir dir;
  {
    auto e = std::move(*Engine::Open(dir.path()));
    WriteTable(e.get(), 0, 100);
    WriteTable(e.get(), 100, 100);
  }
  ASSERT_TRUE(Engine::Open(dir.path()).ok());
  auto e = std::move(*Engine::Open(dir.path()));
  bool damaged = false;
  {
    TableChecker checker(e->db(), [&](const absl::Status&) { damaged = true; });
    EXPECT_TRUE(checker.WaitUntilDone(std::chrono::seconds(30)));
  }
  EXPECT_FALSE(damaged);
}

}  // namespace
}  // namespace chainfire::storage
