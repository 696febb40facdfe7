// The backup container, logical backups and restore, raft-snapshot dump and install, on real
// RocksDB data dirs.
#include <filesystem>
#include <fstream>

#include "chainfire/backup/format.h"
#include "chainfire/backup/restore.h"
#include "chainfire/backup/state_dump.h"
#include "chainfire/mvcc/kv_store.h"
#include "chainfire/storage/raft_format.h"
#include "chainfire/storage/raft_log_store.h"
#include "gtest/gtest.h"
#include "temp_dir.h"

namespace chainfire::backup {
namespace {

using chainfire::testing::TempDir;
namespace fs = std::filesystem;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void WriteAll(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

// A member's store with history: puts of mixed sizes, overwrites, deletes, a txn writing two
// keys at one revision, leases.
class Source {
 public:
  Source() {
    engine_ = std::move(*storage::Engine::Open(dir_.path()));
    kv_ = std::move(*mvcc::KvStore::Open(engine_.get()));
    etcdserverpb::LeaseGrantResponse g;
    EXPECT_TRUE(kv_->ApplyLeaseGrant(++index_, 77, 120, &g).ok());
    for (int i = 0; i < 40; ++i) Put("key/" + std::to_string(i), std::string(i * 37, 'a' + i % 26));
    Put("key/3", "overwritten");
    Put(std::string("bin\0ary", 7), std::string("\0\xff", 2));
    Put("leased", "x", 77);
    Delete("key/5");
    etcdserverpb::TxnRequest txn;
    for (const char* k : {"txn/a", "txn/b"}) {
      auto* put = txn.add_success()->mutable_request_put();
      put->set_key(k);
      put->set_value("t");
    }
    etcdserverpb::TxnResponse tr;
    EXPECT_TRUE(kv_->ApplyTxn(++index_, txn, &tr).ok());
  }
  void Put(const std::string& k, const std::string& v, int64_t lease = 0) {
    etcdserverpb::PutRequest req;
    req.set_key(k);
    req.set_value(v);
    req.set_lease(lease);
    etcdserverpb::PutResponse resp;
    ASSERT_TRUE(kv_->ApplyPut(++index_, req, &resp).ok());
  }
  void Delete(const std::string& k) {
    etcdserverpb::DeleteRangeRequest req;
    req.set_key(k);
    etcdserverpb::DeleteRangeResponse resp;
    ASSERT_TRUE(kv_->ApplyDeleteRange(++index_, req, &resp).ok());
  }
  etcdserverpb::RangeResponse All(mvcc::KvStore* kv) {
    etcdserverpb::RangeRequest req;
    req.set_key(std::string(1, '\0'));
    req.set_range_end(std::string(1, '\0'));
    etcdserverpb::RangeResponse resp;
    EXPECT_TRUE(kv->Range(req, &resp).ok());
    return resp;
  }
  BackupHeader Membership() {
    BackupHeader h;
    h.set_cluster_id(0xabc);
    BackupMember* m = h.add_members();
    m->set_name("n1");
    m->set_id(0x11);
    m->add_peer_urls("http://127.0.0.1:2380");
    return h;
  }
  std::string SaveBackup(const std::string& path) {
    auto s = WriteBackupFile(path, [&](BackupWriter* w) {
      return WriteLogicalBackup(engine_.get(), nullptr, Membership(), w);
    });
    EXPECT_TRUE(s.ok()) << s.status();
    return path;
  }

  TempDir dir_;
  std::unique_ptr<storage::Engine> engine_;
  std::unique_ptr<mvcc::KvStore> kv_;
  uint64_t index_ = 0;
};

RestoreOptions Options(const std::string& file, const std::string& dir) {
  RestoreOptions o;
  o.backup_path = file;
  o.data_dir = dir;
  o.membership.set_cluster_id(0xdef);
  o.identity_record = "member 1 of test";
  o.cluster_salt = "salt";
  return o;
}

TEST(BackupFormat, LengthIsAMultipleOf512Plus32WithTheSha256Last) {
  TempDir dir;
  fs::create_directories(dir.path());
  const std::string path = dir.path() + "/b";
  auto s = WriteBackupFile(path, [](BackupWriter* w) {
    BackupHeader h;
    h.set_kind("backup");
    EXPECT_TRUE(w->WriteHeader(h).ok());
    BackupKey k;
    k.set_key("a");
    EXPECT_TRUE(w->AddKey(k).ok());
    return w->Finish();
  });
  ASSERT_TRUE(s.ok());
  const std::string data = ReadAll(path);
  EXPECT_EQ(data.size() % 512, 32u);
  Sha256 sha;
  sha.Update(std::string_view(data).substr(0, data.size() - 32));
  EXPECT_EQ(sha.Final(), data.substr(data.size() - 32));
  auto v = VerifyFile(path);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->trailer.keys(), 1u);
}

TEST(BackupFormat, EveryFlippedByteAndEveryTruncationIsDetected) {
  Source src;
  const std::string path = src.SaveBackup(src.dir_.path() + "/../" +
                                          fs::path(src.dir_.path()).filename().string() + ".cfb");
  const std::string good = ReadAll(path);
  ASSERT_TRUE(VerifyFile(path).ok());
  const std::string bad = path + ".bad";
  for (size_t i = 0; i < good.size(); ++i) {
    std::string d = good;
    d[i] ^= 0x01;
    WriteAll(bad, d);
    EXPECT_FALSE(VerifyFile(bad).ok()) << "flipped byte " << i << " not detected";
  }
  for (size_t n :
       {size_t{0}, size_t{5}, size_t{12}, good.size() / 2, good.size() - 32, good.size() - 1}) {
    WriteAll(bad, good.substr(0, n));
    EXPECT_FALSE(VerifyFile(bad).ok()) << "truncated to " << n;
  }
  fs::remove(bad);
  fs::remove(path);
}

TEST(BackupFormat, UnknownVersionIsRefusedByName) {
  Source src;
  const std::string path = src.SaveBackup(src.dir_.path() + ".cfb");
  std::string d = ReadAll(path);
  d[11] = 9;  // format version 9
  WriteAll(path, d);
  auto v = VerifyFile(path);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().message(), "unknown backup format version 9 (this build reads version 1)");
  fs::remove(path);
}

TEST(Restore, EveryKeyKeepsValueRevisionsVersionAndLease) {
  Source src;
  const std::string file = src.SaveBackup(src.dir_.path() + ".cfb");
  TempDir target;
  auto report = Restore(Options(file, target.path()));
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->revision, src.kv_->revision());
  EXPECT_EQ(report->compact_revision, src.kv_->revision());

  auto engine = std::move(*storage::Engine::Open(target.path()));
  auto kv = std::move(*mvcc::KvStore::Open(engine.get()));
  EXPECT_EQ(kv->revision(), src.kv_->revision());
  EXPECT_EQ(kv->compact_revision(), src.kv_->revision());
  EXPECT_EQ(kv->applied_index(), 1u) << "the state of a snapshot at index 1";
  {
    auto log = storage::RaftLogStore::Open(
        engine.get(), [] {}, storage::RaftLogStore::WriteMode::kManual);
    ASSERT_TRUE(log.ok()) << log.status();
    EXPECT_EQ((*log)->FirstIndex(), 2u);
    EXPECT_EQ((*log)->LastIndex(), 1u);
    EXPECT_EQ((*log)->InitialHardState().commit, 1u);
    EXPECT_EQ((*log)->GetSnapshot()->meta.index, 1u);
  }
  const auto want = src.All(src.kv_.get());
  const auto got = src.All(kv.get());
  ASSERT_EQ(got.kvs_size(), want.kvs_size());
  ASSERT_GT(want.kvs_size(), 40);
  for (int i = 0; i < want.kvs_size(); ++i) {
    EXPECT_EQ(got.kvs(i).SerializeAsString(), want.kvs(i).SerializeAsString()) << i;
  }
  EXPECT_EQ(kv->Leases().at(77), 120);
  EXPECT_EQ(kv->LeaseKeys(77), std::vector<std::string>{"leased"});
  EXPECT_EQ(*engine->Get(storage::Column::kRaftState, storage::raft_format::kClusterSaltKey),
            "salt");
  // The restored store accepts writes after the backup's revision.
  etcdserverpb::PutRequest put;
  put.set_key("after");
  etcdserverpb::PutResponse pr;
  ASSERT_TRUE(kv->ApplyPut(2, put, &pr).ok());
  EXPECT_EQ(pr.header().revision(), src.kv_->revision() + 1);
  fs::remove(file);
}

TEST(Restore, BumpRevisionAndMarkCompacted) {
  Source src;
  const std::string file = src.SaveBackup(src.dir_.path() + ".cfb");
  TempDir t1, t2;
  RestoreOptions o = Options(file, t1.path());
  o.bump_revision = 1000;
  auto r = Restore(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->revision, src.kv_->revision() + 1000);
  EXPECT_EQ(r->compact_revision, src.kv_->revision());
  o = Options(file, t2.path());
  o.bump_revision = 1000;
  o.mark_compacted = true;
  r = Restore(o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->compact_revision, src.kv_->revision() + 1000);
  fs::remove(file);
}

TEST(Restore, RefusalsWriteNothing) {
  Source src;
  const std::string file = src.SaveBackup(src.dir_.path() + ".cfb");
  TempDir target;
  // Non-empty target.
  fs::create_directories(target.path());
  WriteAll(target.path() + "/keep", "x");
  auto r = Restore(Options(file, target.path()));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("is not empty"), std::string::npos);
  EXPECT_EQ(ReadAll(target.path() + "/keep"), "x");
  fs::remove(target.path() + "/keep");
  // Damaged file.
  std::string d = ReadAll(file);
  d[d.size() / 2] ^= 0x40;
  WriteAll(file + ".bad", d);
  r = Restore(Options(file + ".bad", target.path()));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(fs::is_empty(target.path()));
  // --mark-compacted alone.
  RestoreOptions o = Options(file, target.path());
  o.mark_compacted = true;
  EXPECT_FALSE(Restore(o).ok());
  EXPECT_TRUE(fs::is_empty(target.path()));
  fs::remove(file);
  fs::remove(file + ".bad");
}

TEST(RaftSnapshot, InstallMakesAnotherStoreIdenticalWithHistory) {
  Source src;
  const std::string file = src.dir_.path() + ".snap";
  ASSERT_TRUE(WriteBackupFile(file, [&](BackupWriter* w) {
                return WriteRawState(src.engine_.get(), nullptr, BackupHeader(), w);
              }).ok());
  // A follower with different (older, diverging) state.
  Source other;
  other.Put("only-on-follower", "gone after install");
  other.kv_.reset();
  ASSERT_TRUE(InstallRawState(other.engine_.get(), file).ok());
  auto kv = std::move(*mvcc::KvStore::Open(other.engine_.get()));
  EXPECT_EQ(kv->applied_index(), src.kv_->applied_index());
  EXPECT_EQ(kv->revision(), src.kv_->revision());
  uint32_t h1 = 0, h2 = 0;
  int64_t r1 = 0, r2 = 0;
  ASSERT_TRUE(src.kv_->HashKV(0, &h1, &r1).ok());
  ASSERT_TRUE(kv->HashKV(0, &h2, &r2).ok());
  EXPECT_EQ(h1, h2);
  EXPECT_EQ(r1, r2);
  // History came along: an old revision reads the same on both.
  etcdserverpb::RangeRequest req;
  req.set_key("key/3");
  req.set_revision(5);
  etcdserverpb::RangeResponse a, b;
  ASSERT_TRUE(src.kv_->Range(req, &a).ok());
  ASSERT_TRUE(kv->Range(req, &b).ok());
  EXPECT_EQ(a.kvs(0).value(), b.kvs(0).value());
  // An install cut short by a crash reads as not installed (applied index 0, below the
  // snapshot's), and the redo from the same file completes it.
  Source third;
  third.kv_.reset();
  InstallOptions crash;
  crash.batch_bytes = 512;
  crash.testing_crash_before_last_batch = true;
  ASSERT_FALSE(InstallRawState(third.engine_.get(), file, crash).ok());
  {
    auto partial = std::move(*mvcc::KvStore::Open(third.engine_.get()));
    EXPECT_EQ(partial->applied_index(), 0u);
  }
  ASSERT_TRUE(InstallRawState(third.engine_.get(), file).ok());
  auto redone = std::move(*mvcc::KvStore::Open(third.engine_.get()));
  uint32_t h3 = 0;
  int64_t r3 = 0;
  ASSERT_TRUE(redone->HashKV(0, &h3, &r3).ok());
  EXPECT_EQ(h3, h1);
  EXPECT_EQ(redone->applied_index(), src.kv_->applied_index());
  // A logical backup is not a raft snapshot, and a damaged snapshot is refused whole.
  const std::string logical = src.SaveBackup(src.dir_.path() + ".cfb");
  EXPECT_FALSE(InstallRawState(other.engine_.get(), logical).ok());
  fs::remove(logical);
  fs::remove(file);
}

}  // namespace
}  // namespace chainfire::backup
