// KvStore's apply batches (BeginBatch .. CommitBatch): staged entries see each other, nothing is
// visible before the commit, a failed entry leaves no trace, and a random workload applied in
// random batches gives exactly the responses, events and state of the same workload applied one
// entry at a time (the live-key count included, also after a reopen).
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "chainfire/common/random.h"
#include "chainfire/mvcc/kv_store.h"
#include "gtest/gtest.h"
#include "temp_dir.h"

namespace chainfire::mvcc {
namespace {

using chainfire::testing::TempDir;
using etcdserverpb::RequestOp;
using etcdserverpb::TxnRequest;

struct Store {
  Store() {
    engine = std::move(*storage::Engine::Open(dir.path()));
    kv = std::move(*KvStore::Open(engine.get()));
    kv->SetObserver([this](int64_t rev, std::vector<mvccpb::Event> evs) {
      for (auto& e : evs) events.push_back(std::to_string(rev) + ":" + e.SerializeAsString());
    });
  }
  std::map<std::string, std::string> All(int64_t rev = 0) const {
    etcdserverpb::RangeRequest req;
    req.set_key(std::string(1, '\0'));
    req.set_range_end(std::string(1, '\0'));
    req.set_revision(rev);
    etcdserverpb::RangeResponse resp;
    EXPECT_TRUE(kv->Range(req, &resp).ok());
    std::map<std::string, std::string> out;
    for (const auto& x : resp.kvs()) out[x.key()] = x.SerializeAsString();
    return out;
  }
  TempDir dir;
  std::unique_ptr<storage::Engine> engine;
  std::unique_ptr<KvStore> kv;
  std::vector<std::string> events;
};

etcdserverpb::PutRequest PutReq(const std::string& k, const std::string& v) {
  etcdserverpb::PutRequest p;
  p.set_key(k);
  p.set_value(v);
  p.set_prev_kv(true);
  return p;
}

TEST(ApplyBatch, StagedEntriesSeeEachOtherAndBecomeVisibleAtCommit) {
  Store s;
  etcdserverpb::PutResponse r1, r2;
  s.kv->BeginBatch();
  ASSERT_TRUE(s.kv->ApplyPut(1, PutReq("a", "1"), &r1).ok());
  ASSERT_TRUE(s.kv->ApplyPut(2, PutReq("a", "2"), &r2).ok());
  EXPECT_EQ(r1.header().revision(), 2);
  EXPECT_EQ(r2.header().revision(), 3);
  ASSERT_TRUE(r2.has_prev_kv()) << "the second put sees the first, still staged";
  EXPECT_EQ(r2.prev_kv().value(), "1");
  EXPECT_EQ(r2.prev_kv().mod_revision(), 2);
  // Nothing is visible yet: not to readers, not in the counters, not to watchers.
  EXPECT_EQ(s.kv->revision(), 1);
  EXPECT_EQ(s.kv->applied_index(), 0u);
  EXPECT_TRUE(s.All().empty());
  EXPECT_TRUE(s.events.empty());
  s.kv->CommitBatch();
  EXPECT_EQ(s.kv->revision(), 3);
  EXPECT_EQ(s.kv->applied_index(), 2u);
  ASSERT_EQ(s.All().size(), 1u);
  EXPECT_EQ(s.events.size(), 2u);
  // History inside the batch is kept: the first put is readable at its own revision.
  etcdserverpb::RangeRequest at2;
  at2.set_key("a");
  at2.set_revision(2);
  etcdserverpb::RangeResponse old;
  ASSERT_TRUE(s.kv->Range(at2, &old).ok());
  ASSERT_EQ(old.kvs_size(), 1);
  EXPECT_EQ(old.kvs(0).value(), "1");
  EXPECT_EQ(old.kvs(0).version(), 1);
}

TEST(ApplyBatch, AFailedEntryLeavesNoTraceInTheBatch) {
  Store s;
  s.kv->BeginBatch();
  etcdserverpb::PutResponse r;
  ASSERT_TRUE(s.kv->ApplyPut(1, PutReq("kept", "1"), &r).ok());
  // A txn that writes, then fails (ignore_value on a missing key): its write must go.
  TxnRequest t;
  *t.add_success()->mutable_request_put() = PutReq("doomed", "x");
  etcdserverpb::PutRequest bad = PutReq("missing", "");
  bad.set_ignore_value(true);
  *t.add_success()->mutable_request_put() = bad;
  etcdserverpb::TxnResponse tr;
  EXPECT_EQ(s.kv->ApplyTxn(2, t, &tr).code(), absl::StatusCode::kInvalidArgument);
  etcdserverpb::PutResponse r3, r4;
  ASSERT_TRUE(s.kv->ApplyPut(3, PutReq("other", "y"), &r3).ok());
  EXPECT_EQ(r3.header().revision(), 3) << "the failed txn took no revision";
  ASSERT_TRUE(s.kv->ApplyPut(4, PutReq("doomed", "z"), &r4).ok());
  EXPECT_FALSE(r4.has_prev_kv()) << "the failed txn's staged write must be rolled back";
  s.kv->CommitBatch();
  EXPECT_EQ(s.kv->applied_index(), 4u);
  EXPECT_EQ(s.All().size(), 3u);
  const auto at3 = s.All(3);
  EXPECT_EQ(at3.size(), 2u);
  EXPECT_EQ(at3.count("doomed"), 0u) << "no version of the failed txn may reach storage";
  EXPECT_EQ(at3.count("missing"), 0u);
}

// One random request of the workload; the same sequence goes to both stores.
struct Step {
  enum Kind { kPut, kDelete, kTxn, kCompact, kGrant, kRevoke, kNoop } kind;
  etcdserverpb::PutRequest put;
  etcdserverpb::DeleteRangeRequest del;
  TxnRequest txn;
  int64_t number = 0;  // compaction revision or lease id
};

Step RandomStep(Random& rng, int64_t revision, int step) {
  const std::vector<std::string> keys = {
      std::string(1, '\0'), "a", std::string("a\0", 2), "ab", "b", "\xff"};
  auto key = [&] { return keys[rng.Uniform(keys.size())]; };
  Step s;
  const uint64_t kind = rng.Uniform(20);
  if (kind < 7) {
    s.kind = Step::kPut;
    s.put = PutReq(key(), "v" + std::to_string(step));
    if (rng.Chance(0.1)) s.put.set_ignore_value(true);
    if (rng.Chance(0.2)) s.put.set_lease(1 + rng.Uniform(3));
  } else if (kind < 9) {
    s.kind = Step::kDelete;
    s.del.set_key(key());
    if (rng.Chance(0.5)) s.del.set_range_end(key());
    s.del.set_prev_kv(rng.Chance(0.5));
  } else if (kind < 15) {
    s.kind = Step::kTxn;
    etcdserverpb::Compare* c = s.txn.add_compare();
    c->set_key(key());
    c->set_target(etcdserverpb::Compare::VERSION);
    c->set_result(etcdserverpb::Compare::GREATER);
    c->set_version(static_cast<int64_t>(rng.Uniform(3)));
    for (auto* branch : {s.txn.mutable_success(), s.txn.mutable_failure()}) {
      const int ops = static_cast<int>(rng.Uniform(3));
      for (int i = 0; i < ops; ++i) {
        RequestOp* op = branch->Add();
        const uint64_t what = rng.Uniform(4);
        if (what == 0) {
          *op->mutable_request_put() = PutReq(key(), "t" + std::to_string(step));
        } else if (what == 1) {
          op->mutable_request_delete_range()->set_key(key());
        } else {
          op->mutable_request_range()->set_key(key());
          op->mutable_request_range()->set_range_end(std::string(1, '\0'));
          // A read of the past (or the future) now and then.
          if (what == 3) {
            op->mutable_request_range()->set_revision(
                static_cast<int64_t>(rng.Uniform(revision + 2)));
          }
        }
      }
    }
  } else if (kind < 16) {
    s.kind = Step::kCompact;
    s.number = static_cast<int64_t>(rng.Uniform(revision + 1));
  } else if (kind < 18) {
    s.kind = Step::kGrant;
    s.number = 1 + rng.Uniform(3);
  } else if (kind < 19) {
    s.kind = Step::kRevoke;
    s.number = 1 + rng.Uniform(3);
  } else {
    s.kind = Step::kNoop;
  }
  return s;
}

// Applies `s` as entry `index`; returns the status and serialized response.
std::string Apply(KvStore* kv, uint64_t index, const Step& s) {
  absl::Status st;
  std::string resp;
  switch (s.kind) {
    case Step::kPut: {
      etcdserverpb::PutResponse r;
      st = kv->ApplyPut(index, s.put, &r);
      resp = r.SerializeAsString();
      break;
    }
    case Step::kDelete: {
      etcdserverpb::DeleteRangeResponse r;
      st = kv->ApplyDeleteRange(index, s.del, &r);
      resp = r.SerializeAsString();
      break;
    }
    case Step::kTxn: {
      etcdserverpb::TxnResponse r;
      st = kv->ApplyTxn(index, s.txn, &r);
      resp = r.SerializeAsString();
      break;
    }
    case Step::kCompact: {
      etcdserverpb::CompactionResponse r;
      st = kv->ApplyCompact(index, s.number, &r);
      resp = r.SerializeAsString();
      break;
    }
    case Step::kGrant: {
      etcdserverpb::LeaseGrantResponse r;
      st = kv->ApplyLeaseGrant(index, s.number, 60, &r);
      resp = r.SerializeAsString();
      break;
    }
    case Step::kRevoke: {
      etcdserverpb::LeaseRevokeResponse r;
      st = kv->ApplyLeaseRevoke(index, s.number, &r);
      resp = r.SerializeAsString();
      break;
    }
    case Step::kNoop:
      kv->MarkApplied(index);
      break;
  }
  return st.ToString() + "|" + resp;
}

TEST(ApplyBatch, RandomBatchesMatchOneEntryAtATime) {
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    Random rng(seed);
    Store single, batched;
    uint64_t index = 0;
    for (int round = 0; round < 150; ++round) {
      const int n = 1 + static_cast<int>(rng.Uniform(12));
      batched.kv->BeginBatch();
      for (int i = 0; i < n; ++i) {
        const Step s = RandomStep(rng, single.kv->revision(), round * 100 + i);
        ++index;
        const std::string a = Apply(single.kv.get(), index, s);
        const std::string b = Apply(batched.kv.get(), index, s);
        ASSERT_EQ(a, b) << "seed " << seed << " round " << round << " entry " << i;
      }
      batched.kv->CommitBatch();
      ASSERT_EQ(single.kv->revision(), batched.kv->revision()) << "seed " << seed;
      ASSERT_EQ(single.kv->applied_index(), batched.kv->applied_index());
      ASSERT_EQ(single.All(), batched.All()) << "seed " << seed << " round " << round;
      ASSERT_EQ(single.events, batched.events) << "seed " << seed << " round " << round;
      // etcd_debugging_mvcc_keys_total: the kept count is the number of live keys.
      ASSERT_EQ(single.kv->live_keys(), static_cast<int64_t>(single.All().size()))
          << "seed " << seed << " round " << round;
      ASSERT_EQ(batched.kv->live_keys(), single.kv->live_keys()) << "seed " << seed;
      const int64_t past = std::max<int64_t>(single.kv->compact_revision(), 1) +
                           static_cast<int64_t>(rng.Uniform(5));
      if (past <= single.kv->revision()) ASSERT_EQ(single.All(past), batched.All(past));
    }
    EXPECT_GT(single.kv->revision(), 100) << "the workload should write";
    // Reopened, the store counts its live keys from storage: at once without background
    // threads (the simulation), on the compactor's thread otherwise.
    const int64_t keys = batched.kv->live_keys();
    batched.kv.reset();
    KvStoreOptions inline_count;
    inline_count.background_compaction = false;
    batched.kv = std::move(*KvStore::Open(batched.engine.get(), inline_count));
    EXPECT_EQ(batched.kv->live_keys(), keys) << "seed " << seed;
    batched.kv.reset();
    batched.kv = std::move(*KvStore::Open(batched.engine.get()));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (batched.kv->live_keys() != keys && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    EXPECT_EQ(batched.kv->live_keys(), keys) << "seed " << seed;
  }
}

}  // namespace
}  // namespace chainfire::mvcc
