// Compaction: reads below the compact revision fail, superseded versions are removed for real
// (in the background, in slices), and HashKV does not depend on the physical progress.
#include <chrono>
#include <condition_variable>
#include <mutex>

#include "chainfire/mvcc/kv_store.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "temp_dir.h"

namespace chainfire::mvcc {
namespace {

using chainfire::testing::TempDir;

class CompactionTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }
  void Open() {
    kv_.reset();
    engine_.reset();
    engine_ = std::move(*storage::Engine::Open(dir_.path()));
    kv_ = std::move(*KvStore::Open(engine_.get()));
  }
  void Put(const std::string& k, const std::string& v) {
    etcdserverpb::PutRequest req;
    req.set_key(k);
    req.set_value(v);
    etcdserverpb::PutResponse resp;
    ASSERT_TRUE(kv_->ApplyPut(++index_, req, &resp).ok());
  }
  void Delete(const std::string& k) {
    etcdserverpb::DeleteRangeRequest req;
    req.set_key(k);
    etcdserverpb::DeleteRangeResponse resp;
    ASSERT_TRUE(kv_->ApplyDeleteRange(++index_, req, &resp).ok());
  }
  absl::Status Get(const std::string& k, int64_t rev, etcdserverpb::RangeResponse* resp) {
    etcdserverpb::RangeRequest req;
    req.set_key(k);
    req.set_revision(rev);
    return kv_->Range(req, resp);
  }
  void WaitPhysical(int64_t rev) {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    kv_->WhenPhysicallyCompacted(rev, [&] {
      std::lock_guard<std::mutex> l(mu);
      done = true;
      cv.notify_all();
    });
    std::unique_lock<std::mutex> l(mu);
    ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(30), [&] { return done; }));
  }
  size_t VersionsOnDisk() {
    std::unique_ptr<rocksdb::Iterator> it(
        engine_->db()->NewIterator(storage::OrderedRead(), engine_->cf(storage::Column::kKv)));
    size_t n = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
    return n;
  }
  TempDir dir_;
  std::unique_ptr<storage::Engine> engine_;
  std::unique_ptr<KvStore> kv_;
  uint64_t index_ = 0;
};

// A watch may start (or resume) at the compaction revision: that revision's delete events must
// still be read from storage; a later compaction removes the tombstone.
TEST_F(CompactionTest, TheCompactionRevisionKeepsItsDeletes) {
  Put("a", "1");
  Delete("a");
  const int64_t rev = kv_->revision();
  etcdserverpb::CompactionResponse cresp;
  ASSERT_TRUE(kv_->ApplyCompact(++index_, rev, &cresp).ok());
  WaitPhysical(rev);
  std::vector<mvccpb::Event> events;
  kv_->ReadEvents(rev, rev, "a", "", false, 100, &events);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type(), mvccpb::Event::DELETE);
  EXPECT_EQ(VersionsOnDisk(), 1u) << "the put below it is gone";
  Put("b", "2");
  ASSERT_TRUE(kv_->ApplyCompact(++index_, kv_->revision(), &cresp).ok());
  WaitPhysical(kv_->revision());
  EXPECT_EQ(VersionsOnDisk(), 1u) << "only b's put remains";
}

TEST_F(CompactionTest, OldRevisionsGoAwayAndReadsBelowFail) {
  for (int i = 0; i < 3000; ++i) Put("k" + std::to_string(i % 10), "v" + std::to_string(i));
  Put("gone", "x");
  Delete("gone");
  const int64_t rev = kv_->revision();  // 3003
  Put("k0", "after");
  const size_t before = VersionsOnDisk();
  etcdserverpb::CompactionResponse cresp;
  ASSERT_TRUE(kv_->ApplyCompact(++index_, rev, &cresp).ok());
  EXPECT_EQ(kv_->compact_revision(), rev);
  uint32_t hash_early = 0;
  int64_t at = 0;
  ASSERT_TRUE(kv_->HashKV(0, &hash_early, &at).ok());
  WaitPhysical(rev);
  // 10 live keys at the compact revision plus one newer version remain, and the delete of
  // "gone" at the compact revision itself (that revision stays readable with all its events);
  // "gone"'s value is gone.
  EXPECT_EQ(VersionsOnDisk(), 12u) << "before compaction: " << before;
  uint32_t hash_late = 0;
  ASSERT_TRUE(kv_->HashKV(0, &hash_late, &at).ok());
  EXPECT_EQ(hash_early, hash_late) << "the hash does not depend on physical progress";

  etcdserverpb::RangeResponse resp;
  absl::Status s = Get("k1", rev - 1, &resp);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(s.message(), "etcdserver: mvcc: required revision has been compacted");
  resp.Clear();
  ASSERT_TRUE(Get("k1", rev, &resp).ok()) << "the compact revision itself stays readable";
  EXPECT_EQ(resp.kvs(0).value(), "v2991");
  resp.Clear();
  ASSERT_TRUE(Get("k0", 0, &resp).ok());
  EXPECT_EQ(resp.kvs(0).value(), "after");
  EXPECT_EQ(resp.kvs(0).version(), 301) << "versions keep counting across compaction";

  EXPECT_EQ(kv_->ApplyCompact(++index_, rev, &cresp).code(), absl::StatusCode::kOutOfRange)
      << "compacting again to the same revision fails as etcd";
  EXPECT_EQ(kv_->ApplyCompact(++index_, rev + 100, &cresp).message(),
            "etcdserver: mvcc: required revision is a future revision");
  Put("k5", "changed");
  uint32_t hash_changed = 0;
  ASSERT_TRUE(kv_->HashKV(0, &hash_changed, &at).ok());
  EXPECT_NE(hash_changed, hash_late);
}

// HashKV's value is part of the protocol between members (and etcdctl's `endpoint hashkv`
// compares it): the CRC-32 implementation may change, the value may not. Pinned on a fixed
// state; the value was computed by the hand-written bitwise CRC-32 this replaced, and equals
// Python's zlib.crc32 over the same record bytes.
TEST_F(CompactionTest, HashValueIsPinned) {
  constexpr uint32_t kPinnedHash = 0xfb315a49;
  constexpr uint32_t kPinnedHashAt3 = 0xc355cc55;
  Put("a", "1");
  Put("b", "2");
  Put("a", "3");
  Delete("b");
  uint32_t hash = 0;
  int64_t at = 0;
  ASSERT_TRUE(kv_->HashKV(0, &hash, &at).ok());
  EXPECT_EQ(at, 5);
  EXPECT_EQ(hash, kPinnedHash) << "got 0x" << std::hex << hash;
  ASSERT_TRUE(kv_->HashKV(3, &hash, &at).ok());
  EXPECT_EQ(hash, kPinnedHashAt3) << "got 0x" << std::hex << hash;
}

TEST_F(CompactionTest, CompactRevisionSurvivesReopen) {
  for (int i = 0; i < 20; ++i) Put("a", std::to_string(i));
  etcdserverpb::CompactionResponse cresp;
  ASSERT_TRUE(kv_->ApplyCompact(++index_, 15, &cresp).ok());
  WaitPhysical(15);
  Open();
  EXPECT_EQ(kv_->compact_revision(), 15);
  etcdserverpb::RangeResponse resp;
  EXPECT_EQ(Get("a", 10, &resp).code(), absl::StatusCode::kOutOfRange);
  ASSERT_TRUE(Get("a", 0, &resp).ok());
  EXPECT_EQ(resp.kvs(0).value(), "19");
}

}  // namespace
}  // namespace chainfire::mvcc
