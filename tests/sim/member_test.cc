// The Member alone: a one-member cluster on the production log store over RocksDB's in-memory
// Env, driven by hand. Log entries it cannot apply (a newer request format, an operation it does
// not know) stop it with an error naming the entry; they are never skipped.
#include "chainfire/member/member.h"

#include <filesystem>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "chainfire/common/check.h"
#include "chainfire/common/random.h"
#include "gtest/gtest.h"
#include "rocks_sim_storage.h"
#include "rocksdb/env.h"

namespace chainfire::sim {
namespace {

struct Stopped : std::runtime_error {
  using std::runtime_error::runtime_error;
};
[[noreturn]] void Throw(const std::string& what) { throw Stopped(what); }

class OneMember : public ::testing::Test {
 protected:
  void SetUp() override {
    previous_ = SetFatalHandler(&Throw);
    env_.reset(rocksdb::NewMemEnv(rocksdb::Env::Default()));
    fs_ = std::make_shared<FaultFileSystem>(env_->GetFileSystem());
    fault_env_ = NewFaultEnv(fs_);
    auto st = RocksSimStorage::Open(fault_env_.get(), fs_.get(), "/t/n1", &faults_, &rng_, &now_,
                                    nullptr);
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    storage_ = std::move(*st);
    snap_ = std::filesystem::temp_directory_path() / absl::StrCat("member-test-", ::getpid());
    std::filesystem::create_directories(snap_);
    member::MemberOptions o;
    o.name = "n1";
    o.member_id = 1;
    o.voters = {1};
    o.snapshot_dir = snap_.string();
    o.heartbeat_ms = 10;
    o.seed = 7;
    o.background_threads = false;
    auto m = member::Member::Open(std::move(o), storage_->engine(), storage_.get(), &transport_, 0);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    member_ = std::move(*m);
    for (int i = 0; i < 1000 && !member_->is_leader(); ++i) Step();
    ASSERT_TRUE(member_->is_leader());
  }
  void TearDown() override {
    member_.reset();
    storage_.reset();
    SetFatalHandler(previous_);
    std::error_code ec;
    std::filesystem::remove_all(snap_, ec);
  }
  void Step() {
    ++now_;
    member_->SetTime(static_cast<int64_t>(now_));
    if (now_ % 10 == 0) member_->Tick();
    member_->Pump();
  }
  // Proposes `p` and steps until it is answered (or 2 s of simulated time pass).
  std::optional<member::WriteResult> Run(member::Member::Proposal p) {
    std::optional<member::WriteResult> out;
    member_->Propose(std::move(p), [&out](member::WriteResult r) { out = std::move(r); });
    for (int i = 0; i < 2000 && !out; ++i) Step();
    return out;
  }
  member::Member::Proposal Raw(const internal::Request& req, const std::string& extra = "") {
    member::Member::Proposal p = member_->Prepare(req);
    p.data += extra;  // fields appended to a serialized message are parsed as its own
    return p;
  }

  struct NoNetwork : node::Transport {
    void Send(raft::Message) override {}
  };
  FatalHandler previous_ = nullptr;
  DiskFaults faults_;
  Random rng_{1};
  uint64_t now_ = 0;
  NoNetwork transport_;
  std::unique_ptr<rocksdb::Env> env_;
  std::shared_ptr<FaultFileSystem> fs_;
  std::unique_ptr<rocksdb::Env> fault_env_;
  std::unique_ptr<RocksSimStorage> storage_;
  std::filesystem::path snap_;
  std::unique_ptr<member::Member> member_;
};

internal::Request Put(const std::string& k, const std::string& v) {
  internal::Request req;
  req.mutable_put()->set_key(k);
  req.mutable_put()->set_value(v);
  return req;
}

TEST_F(OneMember, ABatchOfProposalsIsAppliedInOrderAndEachAnswered) {
  std::vector<std::pair<member::Member::Proposal, member::Member::WriteDone>> batch;
  std::vector<std::optional<member::WriteResult>> out(5);
  for (int i = 0; i < 5; ++i) {
    batch.emplace_back(member_->Prepare(Put("k" + std::to_string(i), std::string(100, 'v'))),
                       [&out, i](member::WriteResult r) { out[i] = std::move(r); });
  }
  member_->ProposeBatch(std::move(batch));
  for (int i = 0; i < 2000 && !out[4]; ++i) Step();
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(out[i].has_value()) << i;
    ASSERT_TRUE(out[i]->status.ok()) << out[i]->status.ToString();
    EXPECT_EQ(out[i]->put.header().revision(), 2 + i) << "applied in the batch's order";
  }
  EXPECT_EQ(member_->kv().revision(), 6);
}

TEST_F(OneMember, AppliesAKnownEntryAndAnswersOnceVisible) {
  auto r = Run(member_->Prepare(Put("a", "1")));
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(r->status.ok()) << r->status.ToString();
  EXPECT_EQ(r->put.header().revision(), 2);
  EXPECT_EQ(member_->kv().revision(), 2);  // visible when answered
  // An entry written before formats were recorded (format 0) is applied as format 1.
  internal::Request old = Put("b", "2");
  member::Member::Proposal p = member_->Prepare(old);
  internal::Request parsed;
  ASSERT_TRUE(parsed.ParseFromString(p.data));
  parsed.clear_format();
  p.data = parsed.SerializeAsString();
  r = Run(std::move(p));
  ASSERT_TRUE(r.has_value() && r->status.ok());
  EXPECT_EQ(member_->kv().revision(), 3);
}

TEST_F(OneMember, StopsAtANewerRequestFormatNamingIt) {
  member::Member::Proposal p = member_->Prepare(Put("a", "1"));
  internal::Request parsed;
  ASSERT_TRUE(parsed.ParseFromString(p.data));
  parsed.set_format(member::kRequestFormat + 1);
  p.data = parsed.SerializeAsString();
  try {
    Run(std::move(p));
    FAIL() << "the member applied an entry of a newer format";
  } catch (const Stopped& s) {
    EXPECT_NE(
        std::string(s.what()).find(absl::StrCat("has request format ", member::kRequestFormat + 1)),
        std::string::npos)
        << s.what();
    EXPECT_NE(std::string(s.what()).find("never skipped"), std::string::npos) << s.what();
  }
  EXPECT_EQ(member_->kv().revision(), 1) << "nothing of it was applied";
}

TEST_F(OneMember, StopsAtAnUnknownOperationNamingTheField) {
  internal::Request empty;  // no operation of this build: only the unknown field 99
  const std::string field99 = std::string("\x98\x06\x01", 3);  // tag (99 << 3 | varint), 1
  try {
    Run(Raw(empty, field99));
    FAIL() << "the member skipped an entry with an unknown operation";
  } catch (const Stopped& s) {
    EXPECT_NE(std::string(s.what()).find("unknown field(s) 99"), std::string::npos) << s.what();
  }
}

}  // namespace
}  // namespace chainfire::sim
