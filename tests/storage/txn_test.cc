// Transactions on the MVCC store, and etcd's validation rules for them.
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>

#include "chainfire/common/random.h"
#include "chainfire/mvcc/kv_store.h"
#include "chainfire/mvcc/txn_validation.h"
#include "gtest/gtest.h"
#include "temp_dir.h"

namespace chainfire::mvcc {
namespace {

using chainfire::testing::TempDir;
using etcdserverpb::Compare;
using etcdserverpb::RequestOp;
using etcdserverpb::TxnRequest;

RequestOp PutOp(const std::string& k, const std::string& v) {
  RequestOp op;
  op.mutable_request_put()->set_key(k);
  op.mutable_request_put()->set_value(v);
  return op;
}
RequestOp GetOp(const std::string& k, const std::string& end = "") {
  RequestOp op;
  op.mutable_request_range()->set_key(k);
  op.mutable_request_range()->set_range_end(end);
  return op;
}
RequestOp DelOp(const std::string& k, const std::string& end = "") {
  RequestOp op;
  op.mutable_request_delete_range()->set_key(k);
  op.mutable_request_delete_range()->set_range_end(end);
  return op;
}
Compare ValueIs(const std::string& k, const std::string& v,
                Compare::CompareResult r = Compare::EQUAL) {
  Compare c;
  c.set_key(k);
  c.set_target(Compare::VALUE);
  c.set_result(r);
  c.set_value(v);
  return c;
}

class TxnTest : public ::testing::Test {
 protected:
  void SetUp() override {
    engine_ = std::move(*storage::Engine::Open(dir_.path()));
    kv_ = std::move(*KvStore::Open(engine_.get()));
  }
  absl::Status Apply(const TxnRequest& req, etcdserverpb::TxnResponse* resp) {
    return kv_->ApplyTxn(++index_, req, resp);
  }
  TempDir dir_;
  std::unique_ptr<storage::Engine> engine_;
  std::unique_ptr<KvStore> kv_;
  uint64_t index_ = 0;
};

TEST_F(TxnTest, CompareChoosesTheBranchAndAllWritesShareOneRevision) {
  TxnRequest init;
  *init.add_success() = PutOp("a", "1");
  etcdserverpb::TxnResponse resp;
  ASSERT_TRUE(Apply(init, &resp).ok());
  EXPECT_EQ(resp.header().revision(), 2);

  TxnRequest cas;
  *cas.add_compare() = ValueIs("a", "1");
  *cas.add_success() = PutOp("a", "2");
  *cas.add_success() = PutOp("b", "x");
  *cas.add_success() = GetOp("a");  // sees the write just made
  *cas.add_failure() = GetOp("a");
  resp.Clear();
  ASSERT_TRUE(Apply(cas, &resp).ok());
  EXPECT_TRUE(resp.succeeded());
  EXPECT_EQ(resp.header().revision(), 3);
  ASSERT_EQ(resp.responses_size(), 3);
  EXPECT_EQ(resp.responses(2).response_range().kvs(0).value(), "2");
  EXPECT_EQ(resp.responses(2).response_range().kvs(0).mod_revision(), 3);

  resp.Clear();
  ASSERT_TRUE(Apply(cas, &resp).ok()) << "the same compare now fails";
  EXPECT_FALSE(resp.succeeded());
  EXPECT_EQ(resp.header().revision(), 3) << "a read-only branch moves no revision";
  EXPECT_EQ(resp.responses(0).response_range().kvs(0).value(), "2");
}

TEST_F(TxnTest, DeleteThenRangeAndNestedTxn) {
  TxnRequest setup;
  *setup.add_success() = PutOp("p/1", "a");
  *setup.add_success() = PutOp("p/2", "b");
  etcdserverpb::TxnResponse resp;
  ASSERT_TRUE(Apply(setup, &resp).ok());
  TxnRequest t;
  *t.add_success() = DelOp("p/", "p0");
  TxnRequest* nested = t.add_success()->mutable_request_txn();
  *nested->add_compare() = ValueIs("p/1", "a");  // deleted just before: compare fails
  *nested->add_success() = PutOp("n", "yes");
  *nested->add_failure() = PutOp("n", "no");
  *t.add_success() = GetOp("p/", "p0");
  resp.Clear();
  ASSERT_TRUE(Apply(t, &resp).ok());
  EXPECT_EQ(resp.responses(0).response_delete_range().deleted(), 2);
  EXPECT_FALSE(resp.responses(1).response_txn().succeeded());
  EXPECT_EQ(resp.responses(2).response_range().count(), 0);
  etcdserverpb::RangeRequest get;
  get.set_key("n");
  etcdserverpb::RangeResponse r;
  ASSERT_TRUE(kv_->Range(get, &r).ok());
  EXPECT_EQ(r.kvs(0).value(), "no");
}

TEST_F(TxnTest, ComparingTheValueOfAMissingKeyFails) {
  TxnRequest t;
  *t.add_compare() = ValueIs("missing", "", Compare::EQUAL);
  etcdserverpb::TxnResponse resp;
  ASSERT_TRUE(Apply(t, &resp).ok());
  EXPECT_FALSE(resp.succeeded());
  Compare version;
  version.set_key("missing");
  version.set_target(Compare::VERSION);
  version.set_result(Compare::EQUAL);
  version.set_version(0);
  TxnRequest t2;
  *t2.add_compare() = version;
  resp.Clear();
  ASSERT_TRUE(Apply(t2, &resp).ok());
  EXPECT_TRUE(resp.succeeded()) << "a missing key has version 0";
}

TEST_F(TxnTest, FutureRevisionFailsTheWholeTxn) {
  TxnRequest t;
  *t.add_success() = PutOp("k", "v");
  RequestOp future = GetOp("k");
  future.mutable_request_range()->set_revision(1000);
  *t.add_success() = future;
  etcdserverpb::TxnResponse resp;
  absl::Status s = Apply(t, &resp);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(kv_->revision(), 1) << "nothing was written";
}

TEST(TxnValidation, ReadOnlyAndSerializableAsEtcd) {
  TxnRequest reads;
  *reads.add_compare() = ValueIs("a", "1");
  *reads.add_success() = GetOp("a");
  *reads.add_failure() = GetOp("b", "c");
  EXPECT_TRUE(TxnIsReadOnly(reads));
  EXPECT_FALSE(TxnIsSerializable(reads)) << "a linearizable range";
  for (RequestOp& op : *reads.mutable_success()) op.mutable_request_range()->set_serializable(true);
  for (RequestOp& op : *reads.mutable_failure()) op.mutable_request_range()->set_serializable(true);
  EXPECT_TRUE(TxnIsSerializable(reads));

  TxnRequest compares_only;
  *compares_only.add_compare() = ValueIs("a", "1");
  EXPECT_TRUE(TxnIsReadOnly(compares_only));
  EXPECT_TRUE(TxnIsSerializable(compares_only)) << "etcd: no range asks for a read index";

  TxnRequest writes = reads;
  *writes.add_failure() = PutOp("a", "2");
  EXPECT_FALSE(TxnIsReadOnly(writes));
  TxnRequest deletes = reads;
  *deletes.add_success() = DelOp("a");
  EXPECT_FALSE(TxnIsReadOnly(deletes));
  TxnRequest nested = reads;
  *nested.add_success()->mutable_request_txn()->add_success() = GetOp("a");
  EXPECT_FALSE(TxnIsReadOnly(nested)) << "etcd 3.4 sends a nested txn through the log";
  EXPECT_FALSE(TxnIsSerializable(nested));
}

TEST(TxnValidation, LimitsAndDuplicateRules) {
  TxnRequest ok;
  *ok.add_success() = PutOp("a", "1");
  *ok.add_failure() = PutOp("a", "2");  // same key in both branches is allowed
  *ok.add_success() = DelOp("b");
  EXPECT_TRUE(ValidateTxn(ok).ok());

  TxnRequest dup;
  *dup.add_success() = PutOp("a", "1");
  *dup.add_success() = PutOp("a", "2");
  EXPECT_EQ(ValidateTxn(dup).message(), "etcdserver: duplicate key given in txn request");

  TxnRequest put_in_delete;
  *put_in_delete.add_success() = DelOp("p/", "p0");
  *put_in_delete.add_success() = PutOp("p/x", "1");
  EXPECT_EQ(ValidateTxn(put_in_delete).code(), absl::StatusCode::kInvalidArgument);

  TxnRequest nested;
  *nested.add_success() = PutOp("a", "1");
  *nested.add_success()->mutable_request_txn()->add_failure() = PutOp("a", "2");
  EXPECT_EQ(ValidateTxn(nested).message(), "etcdserver: duplicate key given in txn request");

  TxnRequest deletes_overlap;
  *deletes_overlap.add_success() = DelOp("a", "z");
  *deletes_overlap.add_success() = DelOp("b");
  EXPECT_TRUE(ValidateTxn(deletes_overlap).ok()) << "overlapping deletes are fine";

  TxnRequest many;
  for (int i = 0; i < 129; ++i) *many.add_success() = GetOp("k" + std::to_string(i));
  EXPECT_EQ(ValidateTxn(many).message(), "etcdserver: too many operations in txn request");
  many.mutable_success()->RemoveLast();
  EXPECT_TRUE(ValidateTxn(many).ok()) << "128 is the limit, as etcd's default";

  TxnRequest nokey;
  *nokey.add_success() = PutOp("", "v");
  EXPECT_EQ(ValidateTxn(nokey).message(), "etcdserver: key is not provided");
}

}  // namespace
}  // namespace chainfire::mvcc

namespace chainfire::mvcc {
namespace {

// A seeded random workload of puts, deletes, txns (compare on value, both branches) and
// compactions against a tiny model of the state at every revision.
TEST_F(TxnTest, RandomWorkloadMatchesAModel) {
  Random rng(77);
  const std::vector<std::string> keys = {std::string(1, '\0'), "a", std::string("a\0", 2), "b",
                                         "\xff"};
  std::map<int64_t, std::map<std::string, std::string>> history{{1, {}}};
  std::map<std::string, std::string> state;
  int64_t compacted = 0;
  for (int step = 0; step < 2000; ++step) {
    const std::string& k = keys[rng.Uniform(keys.size())];
    const uint64_t kind = rng.Uniform(10);
    etcdserverpb::TxnResponse resp;
    if (kind < 4) {
      TxnRequest t;
      *t.add_success() = PutOp(k, "p" + std::to_string(step));
      ASSERT_TRUE(Apply(t, &resp).ok());
      state[k] = "p" + std::to_string(step);
    } else if (kind < 6) {
      TxnRequest t;
      *t.add_success() = DelOp(k);
      ASSERT_TRUE(Apply(t, &resp).ok());
      state.erase(k);
    } else if (kind < 9) {
      // CAS-like txn: if k has its model value, write another key; else delete k.
      const std::string& other = keys[rng.Uniform(keys.size())];
      const bool guess_right = rng.Chance(0.5) && state.count(k);
      TxnRequest t;
      *t.add_compare() = ValueIs(k, guess_right ? state[k] : "nope");
      if (other != k) *t.add_success() = PutOp(other, "t" + std::to_string(step));
      *t.add_success() = GetOp(k);
      *t.add_failure() = DelOp(k);
      ASSERT_TRUE(Apply(t, &resp).ok());
      ASSERT_EQ(resp.succeeded(), guess_right) << "step " << step;
      if (guess_right) {
        if (other != k) state[other] = "t" + std::to_string(step);
      } else {
        state.erase(k);
      }
    } else if (kv_->revision() > compacted + 5) {
      const int64_t to =
          compacted + 1 + static_cast<int64_t>(rng.Uniform(kv_->revision() - compacted - 1));
      etcdserverpb::CompactionResponse c;
      ASSERT_TRUE(kv_->ApplyCompact(++index_, to, &c).ok());
      compacted = to;
      // Let the background compactor finish so every later read sees the physical result.
      std::mutex mu;
      std::condition_variable cv;
      bool done = false;
      kv_->WhenPhysicallyCompacted(to, [&] {
        std::lock_guard<std::mutex> l(mu);
        done = true;
        cv.notify_all();
      });
      std::unique_lock<std::mutex> l(mu);
      ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(30), [&] { return done; }));
    }
    history[kv_->revision()] = state;
    // Check a random revision at or after the compaction point in full.
    auto it = history.lower_bound(std::max<int64_t>(compacted, 1));
    std::advance(it, rng.Uniform(std::distance(it, history.end())));
    // The state at revision R is the latest history entry at or below R.
    etcdserverpb::RangeRequest all;
    all.set_key(std::string(1, '\0'));
    all.set_range_end(std::string(1, '\0'));
    all.set_revision(std::max(it->first, compacted));
    etcdserverpb::RangeResponse r;
    ASSERT_TRUE(kv_->Range(all, &r).ok()) << "step " << step;
    auto expected = std::prev(history.upper_bound(all.revision()))->second;
    std::map<std::string, std::string> seen;
    for (const auto& kv : r.kvs()) seen[kv.key()] = kv.value();
    ASSERT_EQ(seen, expected) << "at revision " << all.revision() << " step " << step;
    if (compacted > 1) {
      all.set_revision(compacted - 1);
      EXPECT_EQ(kv_->Range(all, &r).code(), absl::StatusCode::kOutOfRange);
    }
  }
}

}  // namespace
}  // namespace chainfire::mvcc

namespace chainfire::mvcc {
namespace {

// A read-only txn served without the log answers exactly as the same txn applied at that
// revision: compares both ways, ranges with options, history reads, and the same errors.
TEST_F(TxnTest, ReadTxnAnswersAsTheAppliedTxn) {
  for (const auto& [k, v] :
       std::map<std::string, std::string>{{"a", "1"}, {"b", "2"}, {"c", "3"}}) {
    TxnRequest put;
    *put.add_success() = PutOp(k, v);
    etcdserverpb::TxnResponse ignored;
    ASSERT_TRUE(Apply(put, &ignored).ok());
  }
  const int64_t rev = kv_->revision();
  std::vector<TxnRequest> cases;
  TxnRequest hit;
  *hit.add_compare() = ValueIs("a", "1");
  *hit.add_success() = GetOp("a", "c");
  *hit.add_failure() = GetOp("c");
  cases.push_back(hit);
  TxnRequest miss = hit;
  *miss.mutable_compare(0) = ValueIs("a", "nope");
  cases.push_back(miss);
  TxnRequest options;
  RequestOp limited = GetOp("a", std::string(1, '\0'));
  limited.mutable_request_range()->set_limit(2);
  limited.mutable_request_range()->set_sort_order(etcdserverpb::RangeRequest::DESCEND);
  *options.add_success() = limited;
  RequestOp history = GetOp("b");
  history.mutable_request_range()->set_revision(rev - 1);
  *options.add_success() = history;
  cases.push_back(options);
  TxnRequest missing_key;
  *missing_key.add_compare() = ValueIs("zz", "");
  *missing_key.add_failure() = GetOp("zz");
  cases.push_back(missing_key);

  for (size_t i = 0; i < cases.size(); ++i) {
    ASSERT_TRUE(TxnIsReadOnly(cases[i])) << i;
    etcdserverpb::TxnResponse read, applied;
    ASSERT_TRUE(kv_->ReadTxn(cases[i], &read).ok()) << i;
    EXPECT_EQ(kv_->revision(), rev) << "a read-only txn writes nothing";
    ASSERT_TRUE(Apply(cases[i], &applied).ok()) << i;
    EXPECT_EQ(read.SerializeAsString(), applied.SerializeAsString())
        << i << "\nread:    " << read.ShortDebugString()
        << "\napplied: " << applied.ShortDebugString();
  }

  TxnRequest future;
  RequestOp ahead = GetOp("a");
  ahead.mutable_request_range()->set_revision(rev + 5);
  *future.add_success() = ahead;
  etcdserverpb::TxnResponse resp;
  EXPECT_EQ(kv_->ReadTxn(future, &resp), ErrFutureRevision());

  etcdserverpb::CompactionResponse compacted;
  ASSERT_TRUE(kv_->ApplyCompact(++index_, rev, &compacted).ok());
  TxnRequest old;
  RequestOp before = GetOp("a");
  before.mutable_request_range()->set_revision(rev - 1);
  *old.add_success() = before;
  EXPECT_EQ(kv_->ReadTxn(old, &resp), ErrCompacted());
}

}  // namespace
}  // namespace chainfire::mvcc
