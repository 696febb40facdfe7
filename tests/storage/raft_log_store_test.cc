// The durable Raft log on a real RocksDB: reopen, truncation, torn tails, corruption, format
// and consistency checks.
#include "chainfire/storage/raft_log_store.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "chainfire/common/random.h"
#include "chainfire/storage/wal_scan.h"
#include "gtest/gtest.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"
#include "rocksdb/write_batch.h"
#include "temp_dir.h"

namespace chainfire::storage {
namespace {

using chainfire::testing::TempDir;

node::PersistRequest Entries(raft::Index from, raft::Index to, raft::Term term,
                             raft::Index commit = 0) {
  node::PersistRequest r;
  for (raft::Index i = from; i <= to; ++i) {
    r.entries.push_back({term, i, "data-" + std::to_string(i) + "-" + std::to_string(term)});
  }
  r.hard_state = raft::HardState{term, 1, commit};
  return r;
}

class Store {
 public:
  explicit Store(const std::string& dir) {
    auto engine = Engine::Open(dir);
    EXPECT_TRUE(engine.ok()) << engine.status();
    engine_ = std::move(*engine);
    auto log = RaftLogStore::Open(engine_.get(), [this] {
      std::lock_guard<std::mutex> l(mu_);
      cv_.notify_all();
    });
    EXPECT_TRUE(log.ok()) << log.status();
    log_ = std::move(*log);
  }
  // Submits and waits (bounded) until the write is durable.
  void WriteAndWait(node::PersistRequest r) {
    log_->SubmitWrite(std::move(r));
    std::unique_lock<std::mutex> l(mu_);
    size_t done = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (done == 0) {
      auto n = log_->PollCompletedWrites();
      ASSERT_TRUE(n.ok()) << n.status();
      done += *n;
      if (done == 0) {
        ASSERT_NE(cv_.wait_until(l, deadline), std::cv_status::timeout) << "write never completed";
      }
    }
  }
  RaftLogStore& log() { return *log_; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<RaftLogStore> log_;
};

TEST(RaftLogStore, ReopensWithWhatWasSynced) {
  TempDir dir;
  {
    Store s(dir.path());
    EXPECT_EQ(s.log().LastIndex(), 0u);
    s.WriteAndWait(Entries(1, 5, 2, 3));
    EXPECT_EQ(s.log().LastIndex(), 5u);
  }
  Store s(dir.path());
  EXPECT_EQ(s.log().LastIndex(), 5u);
  EXPECT_EQ(s.log().InitialHardState(), (raft::HardState{2, 1, 3}));
  auto entries = s.log().Entries(2, 5, raft::kNoLimit);
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 3u);
  EXPECT_EQ((*entries)[0].data, "data-2-2");
  EXPECT_EQ(*s.log().TermAt(5), 2u);
  EXPECT_TRUE(raft::IsEntryUnavailable(s.log().TermAt(6).status()));
}

TEST(RaftLogStore, ConflictingSuffixIsReplaced) {
  TempDir dir;
  {
    Store s(dir.path());
    s.WriteAndWait(Entries(1, 6, 1));
    s.WriteAndWait(Entries(3, 4, 2));
    EXPECT_EQ(s.log().LastIndex(), 4u);
  }
  Store s(dir.path());
  EXPECT_EQ(s.log().LastIndex(), 4u) << "entries 5 and 6 of the old term are gone";
  EXPECT_EQ(*s.log().TermAt(3), 2u);
  EXPECT_EQ(*s.log().TermAt(2), 1u);
}

std::filesystem::path NewestWal(const std::string& dir) {
  std::filesystem::path newest;
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    if (f.path().extension() == ".log" && f.path().filename().string()[0] != 'L') {
      if (newest.empty() || f.path().filename() > newest.filename()) newest = f.path();
    }
  }
  return newest;
}

TEST(RaftLogStore, TornTailIsCut) {
  TempDir dir;
  {
    Store s(dir.path());
    s.WriteAndWait(Entries(1, 3, 1));
  }
  // A write that was cut mid-record: garbage where the next record would start.
  const auto wal = NewestWal(dir.path());
  ASSERT_FALSE(wal.empty());
  {
    std::ofstream out(wal, std::ios::binary | std::ios::app);
    out << std::string(7, '\x5a');
  }
  Store s(dir.path());
  EXPECT_EQ(s.log().LastIndex(), 3u);
}

TEST(RaftLogStore, CorruptionInTheMiddleIsRefused) {
  TempDir dir;
  {
    Store s(dir.path());
    for (raft::Index i = 1; i <= 20; ++i) s.WriteAndWait(Entries(i, i, 1));
  }
  const auto wal = NewestWal(dir.path());
  ASSERT_FALSE(wal.empty());
  const auto size = std::filesystem::file_size(wal);
  ASSERT_GT(size, 200u);
  {
    std::fstream f(wal, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(size / 3));
    f.put('\x00');
    f.put('\x7f');
    f.put('\x33');
  }
  auto engine = Engine::Open(dir.path());
  ASSERT_FALSE(engine.ok()) << "a corrupt middle must not be silently truncated";
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(engine.status().message().find("refusing to start"), std::string::npos);
  // The message names the damaged file and the offset of the bad record.
  const std::string msg(engine.status().message());
  EXPECT_NE(msg.find(wal.string() + " at offset "), std::string::npos) << msg;
  EXPECT_NE(msg.find("(valid records follow)"), std::string::npos) << msg;
  auto damage = ScanWalFile(wal.string());
  ASSERT_TRUE(damage.ok() && damage->has_value());
  EXPECT_LE((*damage)->offset, size / 3);
  EXPECT_GT((*damage)->offset + 200, size / 3) << "the record holding the flipped bytes";
  EXPECT_FALSE((*damage)->at_tail);
}

TEST(RaftLogStore, DamagedTableFileIsRefusedNamingIt) {
  TempDir dir;
  {
    Store s(dir.path());
    for (raft::Index i = 1; i <= 50; ++i) s.WriteAndWait(Entries(i, i, 1));
  }
  {
    auto engine = std::move(*Engine::Open(dir.path()));
    ASSERT_TRUE(engine->db()->Flush(rocksdb::FlushOptions(), engine->cf(Column::kRaftLog)).ok());
  }
  std::filesystem::path sst;
  for (const auto& f : std::filesystem::directory_iterator(dir.path())) {
    if (f.path().extension() == ".sst") sst = f.path();
  }
  ASSERT_FALSE(sst.empty());
  ASSERT_TRUE(Engine::Open(dir.path()).ok()) << "intact: opens";
  {
    std::fstream f(sst, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(100);  // inside the first data block
    f.put('\xee');
  }
  auto engine = Engine::Open(dir.path());
  ASSERT_FALSE(engine.ok());
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kDataLoss);
  const std::string msg(engine.status().message());
  EXPECT_NE(msg.find(sst.filename().string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("offset"), std::string::npos) << msg;
}

TEST(WalScan, CleanLogTornTailAndMiddleDamage) {
  TempDir dir;
  {
    Store s(dir.path());
    for (raft::Index i = 1; i <= 10; ++i) s.WriteAndWait(Entries(i, i, 1));
  }
  const auto wal = NewestWal(dir.path());
  auto clean = ScanWalFile(wal.string());
  ASSERT_TRUE(clean.ok());
  EXPECT_FALSE(clean->has_value()) << (*clean)->what << " at " << (*clean)->offset;
  const auto size = std::filesystem::file_size(wal);
  {
    std::ofstream out(wal, std::ios::binary | std::ios::app);
    out << std::string(9, '\x5a');  // a torn write after the last record
  }
  auto torn = ScanWalFile(wal.string());
  ASSERT_TRUE(torn.ok() && torn->has_value());
  EXPECT_EQ((*torn)->offset, size);
  EXPECT_TRUE((*torn)->at_tail);
  EXPECT_FALSE((*torn)->torn) << "garbage, not the zeros of an unwritten sector: not cut";
  {
    std::fstream f(wal, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(size / 2));
    f.put('\x01');
    f.put('\x02');
  }
  auto middle = ScanWalFile(wal.string());
  ASSERT_TRUE(middle.ok() && middle->has_value());
  EXPECT_LE((*middle)->offset, size / 2);
  EXPECT_FALSE((*middle)->at_tail);
  // A known CRC32C value (RFC 3720's test vector: 32 zero bytes).
  EXPECT_EQ(Crc32c(std::string(32, '\0').data(), 32), 0x8a9136aau);
}

TEST(RaftLogStore, UnknownFormatVersionIsRefused) {
  TempDir dir;
  {
    auto engine = std::move(*Engine::Open(dir.path()));
    rocksdb::WriteBatch b;
    b.Put(engine->cf(Column::kMeta), "format_version", "99");
    ASSERT_TRUE(engine->Write(&b, true).ok());
  }
  auto engine = Engine::Open(dir.path());
  ASSERT_FALSE(engine.ok());
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(engine.status().message().find("format version 99"), std::string::npos);
}

// A log record of a newer record version is refused, naming the entry and both versions;
// it is never read as something else, and never skipped.
TEST(RaftLogStore, UnknownLogRecordVersionIsRefusedNamingIt) {
  TempDir dir;
  {
    Store s(dir.path());
    s.WriteAndWait(Entries(1, 5, 2, 3));
  }
  {
    auto engine = std::move(*Engine::Open(dir.path()));
    std::string record(1, '\x02');  // version 2, then term and data as version 1 lays them out
    PutBigEndian64(&record, 2);
    record += "data-3-2";
    rocksdb::WriteBatch b;
    b.Put(engine->cf(Column::kRaftLog), BigEndian64(3), record);
    ASSERT_TRUE(engine->Write(&b, true).ok());
  }
  auto engine = std::move(*Engine::Open(dir.path()));
  auto log = RaftLogStore::Open(engine.get(), nullptr);
  absl::Status s = log.status();
  if (log.ok()) s = (*log)->Entries(1, 6, raft::kNoLimit).status();
  ASSERT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("log entry 3 has record version 2; this build reads version 1"),
            std::string::npos)
      << s;
  if (log.ok()) {
    EXPECT_TRUE((*log)->Entries(1, 3, raft::kNoLimit).ok()) << "the entries before it still read";
  }
}

TEST(RaftLogStore, CommitBeyondLastIndexIsRefused) {
  TempDir dir;
  {
    auto engine = std::move(*Engine::Open(dir.path()));
    rocksdb::WriteBatch b;
    std::string hs;
    PutBigEndian64(&hs, 3);
    PutBigEndian64(&hs, 1);
    PutBigEndian64(&hs, 10);  // commit 10 with an empty log
    b.Put(engine->cf(Column::kRaftState), "hard_state", hs);
    ASSERT_TRUE(engine->Write(&b, true).ok());
  }
  auto engine = std::move(*Engine::Open(dir.path()));
  auto log = RaftLogStore::Open(engine.get(), nullptr);
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.status().message().find("beyond the last log index"), std::string::npos);
}

// A file system whose syncs take `sync_delay` (a slow disk), counting syncs by thread.
class SlowSyncFs : public rocksdb::FileSystemWrapper {
 public:
  SlowSyncFs() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "SlowSyncFs"; }
  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    std::unique_ptr<rocksdb::FSWritableFile> file;
    rocksdb::IOStatus s = target()->NewWritableFile(fname, opts, &file, dbg);
    if (s.ok()) *result = std::make_unique<File>(this, std::move(file));
    return s;
  }
  std::atomic<int> sync_delay_ms{0};
  std::atomic<int> file_syncs{0};  // Sync and Fsync calls on any file

 private:
  class File : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(SlowSyncFs* fs, std::unique_ptr<rocksdb::FSWritableFile> f)
        : FSWritableFileOwnerWrapper(std::move(f)), fs_(fs) {}
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
      Delay();
      return target()->Sync(o, d);
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
      Delay();
      return target()->Fsync(o, d);
    }

   private:
    void Delay() {
      ++fs_->file_syncs;
      // Simulates the disk's latency; nothing waits on it for synchronisation.
      std::this_thread::sleep_for(std::chrono::milliseconds(fs_->sync_delay_ms.load()));
    }
    SlowSyncFs* fs_;
  };
};

// A log store on SlowSyncFs that records the thread each group of writes completed on.
class ThreadRecordingStore {
 public:
  explicit ThreadRecordingStore(const std::string& dir)
      : fs_(std::make_shared<SlowSyncFs>()), env_(rocksdb::NewCompositeEnv(fs_)) {
    auto engine = Engine::Open(dir, env_.get());
    EXPECT_TRUE(engine.ok()) << engine.status();
    engine_ = std::move(*engine);
    auto log = RaftLogStore::Open(engine_.get(), [this] {
      std::lock_guard<std::mutex> l(mu_);
      done_on_.push_back(std::this_thread::get_id());
      cv_.notify_all();
    });
    EXPECT_TRUE(log.ok()) << log.status();
    log_ = std::move(*log);
  }
  // Waits (bounded) until `n` writes in all have completed.
  void WaitForWrites(size_t n) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      auto k = log_->PollCompletedWrites();
      ASSERT_TRUE(k.ok()) << k.status();
      completed_ += *k;
      if (completed_ >= n) return;
      ASSERT_NE(cv_.wait_until(l, deadline), std::cv_status::timeout) << "writes never completed";
    }
  }
  std::vector<std::thread::id> done_on() {
    std::lock_guard<std::mutex> l(mu_);
    return done_on_;
  }
  SlowSyncFs& fs() { return *fs_; }
  RaftLogStore& log() { return *log_; }

 private:
  std::shared_ptr<SlowSyncFs> fs_;
  std::unique_ptr<rocksdb::Env> env_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::thread::id> done_on_;  // guarded by mu_
  size_t completed_ = 0;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<RaftLogStore> log_;
};

TEST(RaftLogStore, FastDiskWritesOnTheSubmittingThreadSlowOneOnTheWriter) {
  TempDir dir;
  ThreadRecordingStore s(dir.path());
  const std::thread::id me = std::this_thread::get_id();
  // A fast disk and an idle writer: the write is done (and durable) when SubmitWrite returns.
  s.log().SubmitWrite(Entries(1, 1, 1));
  EXPECT_EQ(s.log().LastIndex(), 1u);
  ASSERT_EQ(s.done_on().size(), 1u);
  EXPECT_EQ(s.done_on()[0], me);
  // A slow fsync (over 10 ms), still written here: the disk was fast before it.
  s.fs().sync_delay_ms = 30;
  s.log().SubmitWrite(Entries(2, 2, 1));
  ASSERT_EQ(s.done_on().size(), 2u);
  EXPECT_EQ(s.done_on()[1], me);
  // After it, writes go to the writer thread: SubmitWrite returns before the fsync.
  s.log().SubmitWrite(Entries(3, 3, 1));
  s.WaitForWrites(3);
  ASSERT_EQ(s.done_on().size(), 3u);
  EXPECT_NE(s.done_on()[2], me);
  // The writer's fsync was slow too: the next write goes to the writer again.
  s.fs().sync_delay_ms = 0;
  s.log().SubmitWrite(Entries(4, 4, 1));
  s.WaitForWrites(4);
  ASSERT_EQ(s.done_on().size(), 4u);
  EXPECT_NE(s.done_on()[3], me);
  // That fsync was fast: writing returns to the submitting thread.
  s.log().SubmitWrite(Entries(5, 5, 1));
  ASSERT_EQ(s.done_on().size(), 5u);
  EXPECT_EQ(s.done_on()[4], me);
  EXPECT_EQ(s.log().LastIndex(), 5u);
  auto read = s.log().Entries(1, 6, UINT64_MAX);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), 5u);
  for (raft::Index i = 1; i <= 5; ++i) EXPECT_EQ((*read)[i - 1].index, i);
}

TEST(RaftLogStore, ACommitOnlyWriteIsWrittenWithoutAnFsync) {
  TempDir dir;
  {
    ThreadRecordingStore s(dir.path());
    s.log().SubmitWrite(Entries(1, 3, 2, 1));
    s.WaitForWrites(1);
    EXPECT_EQ(s.log().syncs(), 1u);
    node::PersistRequest commit_only;
    commit_only.hard_state = raft::HardState{2, 1, 3};
    commit_only.sync = false;
    const int file_syncs = s.fs().file_syncs;
    s.log().SubmitWrite(std::move(commit_only));
    s.WaitForWrites(2);
    EXPECT_EQ(s.fs().file_syncs, file_syncs) << "no file was synced for it";
    EXPECT_EQ(s.log().syncs(), 1u) << "no fsync for it";
    EXPECT_EQ(s.log().writes(), 2u);
  }
  // Written (only not forced to disk): a clean reopen reads it.
  Store s(dir.path());
  EXPECT_EQ(s.log().InitialHardState(), (raft::HardState{2, 1, 3}));
}

TEST(RaftLogStore, GroupCommitBatchesWritesQueuedDuringASlowFsync) {
  TempDir dir;
  ThreadRecordingStore s(dir.path());
  s.fs().sync_delay_ms = 30;
  s.log().SubmitWrite(Entries(1, 1, 1));  // on this thread, slow: the next go to the writer
  for (raft::Index i = 2; i <= 51; ++i) s.log().SubmitWrite(Entries(i, i, 1));
  s.WaitForWrites(51);
  EXPECT_EQ(s.log().LastIndex(), 51u);
  EXPECT_EQ(s.log().writes(), 51u);
  // 50 writes submitted while the writer's 30 ms fsyncs ran: far fewer fsyncs than writes.
  EXPECT_LT(s.log().syncs(), 20u) << "several writes shared one fsync";
}

}  // namespace
}  // namespace chainfire::storage

namespace chainfire::storage {
namespace {

TEST(RaftLogStore, SnapshotAndCompactionSurviveReopen) {
  TempDir dir;
  {
    Store s(dir.path());
    s.WriteAndWait(Entries(1, 10, 1, 10));
    ASSERT_TRUE(s.log().SaveSnapshotAndCompact(8, "state@8", 6).ok());
    EXPECT_EQ(s.log().FirstIndex(), 7u);
    EXPECT_TRUE(raft::IsCompacted(s.log().TermAt(5).status()));
    EXPECT_EQ(*s.log().TermAt(6), 1u) << "the compaction point keeps its term";
    EXPECT_FALSE(s.log().SaveSnapshotAndCompact(11, "beyond", 11).ok());
  }
  Store s(dir.path());
  EXPECT_EQ(s.log().FirstIndex(), 7u);
  EXPECT_EQ(s.log().LastIndex(), 10u);
  auto snap = s.log().GetSnapshot();
  ASSERT_TRUE(snap.ok());
  EXPECT_EQ(snap->meta, (raft::SnapshotMeta{8, 1}));
  EXPECT_EQ(snap->data, "state@8");
  EXPECT_EQ(s.log().Entries(7, 11, raft::kNoLimit)->size(), 4u);
}

TEST(RaftLogStore, InstallingASnapshotReplacesTheLog) {
  TempDir dir;
  {
    Store s(dir.path());
    s.WriteAndWait(Entries(1, 5, 1));
    node::PersistRequest r;
    r.snapshot = raft::Snapshot{{20, 3}, "leader-state"};
    r.hard_state = raft::HardState{3, 0, 20};
    s.WriteAndWait(std::move(r));
    s.WriteAndWait(Entries(21, 22, 3, 20));
    EXPECT_EQ(s.log().FirstIndex(), 21u);
    EXPECT_EQ(s.log().LastIndex(), 22u);
  }
  Store s(dir.path());
  EXPECT_EQ(s.log().FirstIndex(), 21u);
  EXPECT_EQ(s.log().LastIndex(), 22u);
  EXPECT_EQ(*s.log().TermAt(20), 3u);
  EXPECT_TRUE(raft::IsCompacted(s.log().TermAt(5).status()));
  EXPECT_EQ(s.log().GetSnapshot()->data, "leader-state");
}

// Every answer of a running store (served from its in-memory tail where it can) must equal the
// answer of the same log reopened from disk (an empty tail: everything from RocksDB), through
// appends, conflicting suffixes, snapshot installs and compactions.
TEST(RaftLogStore, InMemoryTailAnswersAsTheDiskDoes) {
  Random rng(31);
  TempDir dir;
  auto dump = [](RaftLogStore& log) {
    std::string out;
    for (raft::Index i = log.FirstIndex() > 0 ? log.FirstIndex() - 1 : 0; i <= log.LastIndex() + 1;
         ++i) {
      auto t = log.TermAt(i);
      absl::StrAppend(&out, i, ":", t.ok() ? std::to_string(*t) : t.status().ToString(), " ");
    }
    for (raft::Index lo = log.FirstIndex(); lo <= log.LastIndex(); lo += 3) {
      auto e = log.Entries(lo, log.LastIndex() + 1, 40);  // a byte limit cuts some answers
      if (!e.ok()) {
        absl::StrAppend(&out, e.status().ToString());
        continue;
      }
      for (const raft::Entry& x : *e) absl::StrAppend(&out, x.index, "/", x.term, "/", x.data, ",");
      absl::StrAppend(&out, ";");
    }
    return out;
  };
  raft::Term term = 1;
  for (int round = 0; round < 30; ++round) {
    std::string live;
    {
      Store s(dir.path());
      for (int step = 0; step < 20; ++step) {
        const raft::Index last = s.log().LastIndex();
        const uint64_t what = rng.Uniform(10);
        if (what < 6 || last == 0) {
          s.WriteAndWait(Entries(last + 1, last + 1 + rng.Uniform(4), term));
        } else if (what < 8) {
          ++term;  // a new leader overwrites a suffix
          const raft::Index from =
              std::max<raft::Index>(s.log().FirstIndex(), last - std::min<raft::Index>(last, 3));
          s.WriteAndWait(Entries(std::max<raft::Index>(from, 1), from + rng.Uniform(2), term));
        } else if (what < 9 && last >= s.log().FirstIndex()) {
          const raft::Index at =
              s.log().FirstIndex() + rng.Uniform(last - s.log().FirstIndex() + 1);
          (void)s.log().SaveSnapshotAndCompact(at, "snap", at - std::min<raft::Index>(at, 2));
        } else {
          ++term;
          node::PersistRequest r;
          r.snapshot = raft::Snapshot{{last + 5, term}, "leader"};
          r.hard_state = raft::HardState{term, 0, last + 5};
          s.WriteAndWait(std::move(r));
        }
      }
      live = dump(s.log());
    }
    Store reopened(dir.path());
    ASSERT_EQ(dump(reopened.log()), live) << "round " << round;
  }
}

}  // namespace
}  // namespace chainfire::storage
