// The replicated part of leases in the MVCC store: grant, attach, revoke at one revision.
#include "chainfire/mvcc/kv_store.h"
#include "gtest/gtest.h"
#include "temp_dir.h"

namespace chainfire::mvcc {
namespace {

using chainfire::testing::TempDir;

class LeaseStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }
  void Open() {
    kv_.reset();
    engine_.reset();
    engine_ = std::move(*storage::Engine::Open(dir_.path()));
    kv_ = std::move(*KvStore::Open(engine_.get()));
  }
  absl::Status Put(const std::string& k, int64_t lease) {
    etcdserverpb::PutRequest req;
    req.set_key(k);
    req.set_value("v");
    req.set_lease(lease);
    etcdserverpb::PutResponse resp;
    return kv_->ApplyPut(++index_, req, &resp);
  }
  TempDir dir_;
  std::unique_ptr<storage::Engine> engine_;
  std::unique_ptr<KvStore> kv_;
  uint64_t index_ = 0;
};

TEST_F(LeaseStoreTest, GrantAttachRevoke) {
  etcdserverpb::LeaseGrantResponse g;
  ASSERT_TRUE(kv_->ApplyLeaseGrant(++index_, 7, 30, &g).ok());
  EXPECT_EQ(g.ttl(), 30);
  EXPECT_EQ(kv_->ApplyLeaseGrant(++index_, 7, 30, &g).message(),
            "etcdserver: lease already exists");
  EXPECT_EQ(Put("x", 99).message(), "etcdserver: requested lease not found");
  ASSERT_TRUE(Put("a", 7).ok());
  ASSERT_TRUE(Put("b", 7).ok());
  ASSERT_TRUE(Put("c", 7).ok());
  ASSERT_TRUE(Put("c", 0).ok()) << "re-put without the lease detaches c";
  EXPECT_EQ(kv_->LeaseKeys(7), (std::vector<std::string>{"a", "b"}));
  Open();  // leases and attachments are durable
  EXPECT_EQ(kv_->Leases().at(7), 30);
  const int64_t before = kv_->revision();
  etcdserverpb::LeaseRevokeResponse r;
  ASSERT_TRUE(kv_->ApplyLeaseRevoke(++index_, 7, &r).ok());
  EXPECT_EQ(r.header().revision(), before + 1) << "all attached keys go at one revision";
  etcdserverpb::RangeRequest all;
  all.set_key(std::string(1, '\0'));
  all.set_range_end(std::string(1, '\0'));
  etcdserverpb::RangeResponse resp;
  ASSERT_TRUE(kv_->Range(all, &resp).ok());
  ASSERT_EQ(resp.kvs_size(), 1);
  EXPECT_EQ(resp.kvs(0).key(), "c");
  EXPECT_FALSE(kv_->HasLease(7));
  EXPECT_EQ(kv_->ApplyLeaseRevoke(++index_, 7, &r).code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace chainfire::mvcc
