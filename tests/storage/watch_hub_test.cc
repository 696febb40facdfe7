// The watch hub against a real store: exactly once, in revision order, no gaps, whether the
// watch starts in the past, the stream is slow, or the start is compacted.
#include "chainfire/mvcc/watch_hub.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "gtest/gtest.h"
#include "temp_dir.h"

namespace chainfire::mvcc {
namespace {

using chainfire::testing::TempDir;

// A sink with a small queue that a consumer thread drains slowly.
class SlowSink : public WatchSink {
 public:
  explicit SlowSink(size_t capacity) : capacity_(capacity) {}
  bool Deliver(int64_t, std::vector<mvccpb::Event> events, int64_t) override {
    std::lock_guard<std::mutex> l(mu_);
    if (queue_.size() >= capacity_) return false;
    queue_.push_back(std::move(events));
    cv_.notify_all();
    return true;
  }
  void Compacted(int64_t, int64_t rev) override {
    std::lock_guard<std::mutex> l(mu_);
    compacted_at_ = rev;
    cv_.notify_all();
  }
  bool HasRoom() override {
    std::lock_guard<std::mutex> l(mu_);
    return queue_.size() < capacity_;
  }
  // Takes everything delivered so far (waits up to `wait` for something).
  std::vector<mvccpb::Event> Drain(std::chrono::milliseconds wait) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_for(l, wait, [&] { return !queue_.empty() || compacted_at_ != 0; });
    std::vector<mvccpb::Event> out;
    while (!queue_.empty()) {
      for (auto& e : queue_.front()) out.push_back(std::move(e));
      queue_.pop_front();
    }
    return out;
  }
  int64_t compacted_at() {
    std::lock_guard<std::mutex> l(mu_);
    return compacted_at_;
  }

 private:
  size_t capacity_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::vector<mvccpb::Event>> queue_;
  int64_t compacted_at_ = 0;
};

class WatchHubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    engine_ = std::move(*storage::Engine::Open(dir_.path()));
    kv_ = std::move(*KvStore::Open(engine_.get()));
    hub_ = std::make_unique<WatchHub>(kv_.get());
  }
  void TearDown() override { hub_.reset(); }
  void Put(const std::string& k, const std::string& v) {
    etcdserverpb::PutRequest req;
    req.set_key(k);
    req.set_value(v);
    etcdserverpb::PutResponse resp;
    ASSERT_TRUE(kv_->ApplyPut(++index_, req, &resp).ok());
  }
  // Collects events until `n` arrived (bounded).
  std::vector<mvccpb::Event> Collect(SlowSink& sink, size_t n) {
    std::vector<mvccpb::Event> all;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (all.size() < n && std::chrono::steady_clock::now() < deadline) {
      for (auto& e : sink.Drain(std::chrono::milliseconds(50))) all.push_back(std::move(e));
    }
    return all;
  }
  TempDir dir_;
  std::unique_ptr<storage::Engine> engine_;
  std::unique_ptr<KvStore> kv_;
  std::unique_ptr<WatchHub> hub_;
  uint64_t index_ = 0;
};

TEST_F(WatchHubTest, HistoryThenLiveExactlyOnceInOrderThroughASlowStream) {
  for (int i = 0; i < 300; ++i) Put("w/" + std::to_string(i % 7), "h" + std::to_string(i));
  SlowSink sink(/*capacity=*/2);
  WatchSpec spec;
  spec.key = "w/";
  spec.range_end = "w0";
  spec.start_revision = 2;  // the first put
  spec.prev_kv = true;
  hub_->Add(&sink, 1, spec);
  // Writes keep coming while the watcher catches up and its queue keeps overflowing.
  std::thread writer([&] {
    for (int i = 300; i < 900; ++i) Put("w/" + std::to_string(i % 7), "l" + std::to_string(i));
  });
  std::vector<mvccpb::Event> events = Collect(sink, 900);
  writer.join();
  for (auto& e : Collect(sink, 900 - events.size())) events.push_back(std::move(e));
  ASSERT_EQ(events.size(), 900u);
  for (size_t i = 0; i < events.size(); ++i) {
    ASSERT_EQ(events[i].kv().mod_revision(), static_cast<int64_t>(i) + 2) << "gap or duplicate";
    if (i >= 7) {
      ASSERT_TRUE(events[i].has_prev_kv());
      EXPECT_EQ(events[i].prev_kv().mod_revision(), events[i - 7].kv().mod_revision());
    }
  }
  hub_->RemoveAll(&sink);
}

TEST_F(WatchHubTest, FiltersAndRanges) {
  SlowSink sink(100);
  WatchSpec spec;
  spec.key = "a";
  spec.no_delete = true;
  hub_->Add(&sink, 7, spec);
  Put("a", "1");
  Put("b", "x");  // another key: not delivered
  etcdserverpb::DeleteRangeRequest del;
  del.set_key("a");
  etcdserverpb::DeleteRangeResponse dresp;
  ASSERT_TRUE(kv_->ApplyDeleteRange(++index_, del, &dresp).ok());  // filtered out
  Put("a", "2");
  auto events = Collect(sink, 2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kv().value(), "1");
  EXPECT_EQ(events[1].kv().value(), "2");
  EXPECT_FALSE(events[0].has_prev_kv()) << "prev_kv only when asked";
  EXPECT_TRUE(sink.Drain(std::chrono::milliseconds(100)).empty());
  hub_->RemoveAll(&sink);
}

// A watch from a future revision on a member that then installs a snapshot (every watcher
// resynced) below that revision must still start there: the catch-up has nothing to read and
// must not move it back (found by the member simulation: a resumed watch got a revision twice).
TEST_F(WatchHubTest, AWatchFromTheFutureStaysThereAcrossAResync) {
  hub_ = std::make_unique<WatchHub>(kv_.get(), std::chrono::minutes(10),
                                    /*catch_up_thread=*/false);
  Put("f", "0");  // revision 2
  SlowSink sink(100);
  WatchSpec spec;
  spec.key = "f";
  spec.start_revision = kv_->revision() + 3;  // 5
  hub_->Add(&sink, 1, spec);
  hub_->Resync(kv_->revision());  // what a snapshot install does
  for (int i = 0; i < 10 && hub_->CatchUpStep(); ++i) {
  }
  for (int i = 1; i <= 5; ++i) Put("f", std::to_string(i));  // revisions 3..7
  const std::vector<mvccpb::Event> events = sink.Drain(std::chrono::milliseconds(0));
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].kv().mod_revision(), 5);
  EXPECT_EQ(events[2].kv().mod_revision(), 7);
  hub_->RemoveAll(&sink);
}

TEST_F(WatchHubTest, CompactedStartIsCancelled) {
  for (int i = 0; i < 10; ++i) Put("k", std::to_string(i));
  etcdserverpb::CompactionResponse c;
  ASSERT_TRUE(kv_->ApplyCompact(++index_, 8, &c).ok());
  SlowSink sink(10);
  WatchSpec spec;
  spec.key = "k";
  spec.start_revision = 3;
  hub_->Add(&sink, 1, spec);
  sink.Drain(std::chrono::seconds(5));
  EXPECT_EQ(sink.compacted_at(), 8);
}

}  // namespace
}  // namespace chainfire::mvcc
