// The simulation of the product: N real member::Members, each on the real KvStore and the
// production RaftLogStore in one RocksDB (RocksDB's in-memory Env under the fault file system),
// driven on one thread by one seed. Simulated etcd clients issue Put, DeleteRange, Txn (CAS),
// linearizable and serializable Range, Compact, lease grants and keep-alives, and Watch; the
// checkers are listed in docs/testing.md ("The member simulation").
#include <algorithm>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <queue>
#include <set>
#include <stdexcept>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "chainfire/common/check.h"
#include "chainfire/common/random.h"
#include "chainfire/member/member.h"
#include "linearizability.h"
#include "rocks_sim_storage.h"
#include "rocksdb/env.h"
#include "safety_checker.h"
#include "simulation.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace chainfire::sim {
namespace {

struct Violation : std::runtime_error {
  using std::runtime_error::runtime_error;
};
[[noreturn]] void ThrowViolation(const std::string& what) { throw Violation(what); }

constexpr uint64_t kTickMs = 10;
constexpr int kElectionTicks = 10;
constexpr int64_t kElectionMs = kTickMs * kElectionTicks;
constexpr uint64_t kClientTimeoutMs = 1000;
constexpr int64_t kLeaseTtlSeconds = 1;
const char* const kWatchKey = "k";
const char* const kWatchEnd = "l";

class MemberWorld;

// A watch stream's client side: batches queue until the client reads them (a bounded buffer,
// so slow clients push the hub into catch-up from storage).
class SimSink : public mvcc::WatchSink {
 public:
  struct Batch {
    std::vector<mvccpb::Event> events;
    int64_t revision;
  };
  explicit SimSink(size_t capacity) : capacity_(capacity) {}
  bool Deliver(int64_t, std::vector<mvccpb::Event> events, int64_t revision) override {
    if (queue_.size() >= capacity_) return false;
    queue_.push_back(Batch{std::move(events), revision});
    return true;
  }
  void Compacted(int64_t, int64_t compact_revision) override {
    compacted_ = true;
    compact_revision_ = compact_revision;
  }
  bool HasRoom() override { return queue_.size() < capacity_; }
  std::deque<Batch>& queue() { return queue_; }
  bool compacted() const { return compacted_; }
  int64_t compact_revision() const { return compact_revision_; }

 private:
  size_t capacity_;
  std::deque<Batch> queue_;
  bool compacted_ = false;
  int64_t compact_revision_ = 0;
};

class SimNet : public node::Transport {
 public:
  SimNet(MemberWorld* world, raft::NodeId from) : world_(world), from_(from) {}
  void Send(raft::Message m) override;

 private:
  MemberWorld* world_;
  raft::NodeId from_;
};

struct Node {
  raft::NodeId id = 0;
  std::unique_ptr<rocksdb::Env> env;  // RocksDB's in-memory Env (declared first: dies last)
  std::shared_ptr<FaultFileSystem> fault_fs;
  std::unique_ptr<rocksdb::Env> fault_env;
  std::unique_ptr<RocksSimStorage> storage;
  std::unique_ptr<member::Member> member;
  std::unique_ptr<SimNet> net;
  std::unique_ptr<SimSink> reference;  // every event this incarnation applies, for the checkers
  bool reference_lost = false;
  bool up = false;
  bool was_leader = false;
  uint64_t restart_at = 0;
  uint64_t incarnation = 0;
  bool disk_lost = false;
  bool recovering = false;
  int64_t last_revision = 0;  // revision monotonicity within an incarnation
};

// One logical watch of a client: it lives across reconnects (resumed at last_covered + 1).
struct ClientWatch {
  bool active = false;
  int64_t start = 0;
  int64_t last_covered = 0;    // every revision up to here has been delivered
  int64_t last_event_rev = 0;  // of the last event received
  raft::NodeId member = 0;
  uint64_t incarnation = 0;
  std::unique_ptr<SimSink> sink;
  std::map<int64_t, std::vector<std::string>> received;  // revision -> described events
};

enum class Kind { kPut, kDelete, kCas, kGet, kCompact };

struct Client {
  bool busy = false;
  Kind kind = Kind::kPut;
  size_t op = 0;  // index into history_ (KV operations)
  uint64_t token = 0;
  raft::NodeId member = 0;
  uint64_t deadline = 0;
  ClientWatch watch;
  std::vector<ClientWatch> finished_watches;
};

struct LeaseState {
  uint64_t call_ms = 0;
  uint64_t keep_until = 0;
  int64_t last_renew_ok = 0;
  bool granted = false;         // acknowledged
  bool revoked = false;         // a revoke was applied
  bool client_revoked = false;  // a client asked for the revoke (no expiry to check)
};

std::string Describe(const mvccpb::Event& e) {
  return absl::StrCat(e.type() == mvccpb::Event::PUT ? "PUT " : "DELETE ", e.kv().key(), "=",
                      e.kv().value(), " c", e.kv().create_revision(), " v", e.kv().version());
}

int64_t HeaderRevision(const internal::Request& req, const member::WriteResult& r) {
  switch (req.op_case()) {
    case internal::Request::kPut:
      return r.put.header().revision();
    case internal::Request::kDeleteRange:
      return r.delete_range.header().revision();
    case internal::Request::kTxn:
      return r.txn.header().revision();
    case internal::Request::kCompaction:
      return r.compaction.header().revision();
    case internal::Request::kLeaseGrant:
      return r.lease_grant.header().revision();
    case internal::Request::kLeaseRevoke:
      return r.lease_revoke.header().revision();
    default:
      return 0;
  }
}

class MemberWorld {
 public:
  explicit MemberWorld(const SimOptions& o) : opt_(o), profile_(o.profile), rng_(o.seed) {
    n_ = profile_.nodes != 0 ? profile_.nodes : (rng_.Chance(0.5) ? 3 : 5);
    disk_faults_.max_latency_ms = profile_.disk_max_latency_ms;
    disk_faults_.fsync_failure = profile_.fsync_failure;
    disk_faults_.keep_unsynced = profile_.keep_unsynced;
    disk_faults_.testing_drop_vote = o.bugs.vote_not_persisted;
    disk_faults_.testing_ignore_fsync_failure = o.bugs.ignore_fsync_failure;
    nodes_.resize(n_);
    blocked_.assign(n_ + 1, std::vector<bool>(n_ + 1, false));
    for (int i = 0; i < n_; ++i) {
      nodes_[i].id = i + 1;
      nodes_[i].net = std::make_unique<SimNet>(this, i + 1);
    }
    clients_.resize(opt_.clients);
    files_ = std::filesystem::temp_directory_path() /
             absl::StrCat("chainfire-sim-", ::getpid(), "-", o.seed);
    std::filesystem::remove_all(files_);
    result_.real_storage = true;
    result_.real_member = true;
  }
  ~MemberWorld() {
    for (Node& n : nodes_) StopNode(n);
    std::error_code ec;
    std::filesystem::remove_all(files_, ec);
  }

  SimResult Run();
  void Enqueue(raft::NodeId from, raft::Message m);

 private:
  Node& N(raft::NodeId id) { return nodes_[id - 1]; }
  void Trace(const std::string& s) {
    if (opt_.trace) std::printf("[%6llu] %s\n", static_cast<unsigned long long>(now_), s.c_str());
  }
  [[noreturn]] void Fail(const std::string& what) { throw Violation(what); }
  std::string SnapDir(const Node& n) const { return (files_ / absl::StrCat("n", n.id)).string(); }
  std::string DataDir(const Node& n) const { return absl::StrCat("/sim/n", n.id); }

  void Start(Node& n);
  void StopNode(Node& n);
  void Crash(Node& n, const char* why);
  void WipeDisk(Node& n);
  void StepOnce();
  void Faults();
  void Deliver();
  void PumpAll();
  void Background();
  void ObserveRole(Node& n);
  void OnApplied(Node& n, const raft::Entry& e, const internal::Request& req,
                 const member::WriteResult& r);
  void OnDurable(Node& n, const node::PersistRequest& r);
  bool Converged(std::string* why);
  void FinalChecks();

  // Clients.
  void Clients();
  void IssueKv(size_t ci, Node& n);
  void OnWriteDone(size_t ci, uint64_t token, raft::NodeId via, member::WriteResult r);
  void OnReadDone(size_t ci, uint64_t token, raft::NodeId via, absl::Status s);
  void SerializableRead(size_t ci, Node& n, const std::string& key);
  void ServeRead(size_t ci, raft::NodeId via);
  void ServeDeferredReads();
  void Timeouts();
  void Leases();
  void Watches();
  void OpenWatch(size_t ci, ClientWatch& w, int64_t from);
  void ReadReference(Node& n);
  void CheckWatches();

  SimOptions opt_;
  FaultProfile profile_;
  Random rng_;
  int n_;
  uint64_t now_ = 0;
  uint64_t logical_ = 0;
  uint64_t seq_ = 0;
  DiskFaults disk_faults_;
  std::vector<Node> nodes_;
  struct InFlight {
    uint64_t at;
    uint64_t seq;
    raft::Message msg;
    bool operator<(const InFlight& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  std::priority_queue<InFlight> net_;
  std::vector<std::vector<bool>> blocked_;
  uint64_t partition_until_ = 0;
  bool settling_ = false;
  std::filesystem::path files_;
  uint64_t snapshot_files_ = 0;

  std::vector<Client> clients_;
  uint64_t next_token_ = 1;
  struct DeferredRead {
    size_t client;
    uint64_t token;
    raft::NodeId via;
    uint64_t incarnation;
  };
  std::vector<DeferredRead> deferred_reads_;
  bool proposing_ = false;  // inside a client's Member::Propose call  // confirmed, served later (a
                            // reader thread)
  std::vector<Operation> history_;
  std::vector<bool> discarded_;
  std::map<std::string, std::string> last_written_;
  std::map<std::string, std::set<std::string>> proposed_values_;
  // Acknowledged writes: (proposer, request id) -> history index; and where each request landed.
  std::map<std::pair<uint64_t, uint64_t>, size_t> acked_;
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> applied_at_;
  std::map<int64_t, size_t> acked_revisions_;  // revision of an acknowledged change -> op
  std::map<uint64_t, int64_t> revision_at_index_;
  std::map<std::tuple<size_t, raft::NodeId, uint64_t>, int64_t> serializable_sessions_;
  std::map<int64_t, std::vector<std::string>> reference_events_;

  std::map<int64_t, LeaseState> leases_;
  int64_t next_lease_ = 1000;
  uint64_t last_election_ms_ = 0;
  SafetyChecker checker_;
  SimResult result_;
};

void SimNet::Send(raft::Message m) { world_->Enqueue(from_, std::move(m)); }

void MemberWorld::Enqueue(raft::NodeId from, raft::Message m) {
  ++result_.messages;
  if (m.type == raft::MessageType::kSnap && m.snapshot && m.to >= 1 &&
      m.to <= static_cast<raft::NodeId>(n_)) {
    // What the peer transport does: the sender writes its state to a file, which is copied
    // into the receiver's snapshot directory and named in the message.
    auto path = N(from).member->WriteSnapshotForPeer(m);
    CF_CHECK(path.ok()) << "writing a snapshot: " << path.status().ToString();
    const std::string dir = SnapDir(N(m.to));
    std::filesystem::create_directories(dir);
    const std::string dest = absl::StrCat(dir, "/", from, "-", m.snapshot->meta.term, "-",
                                          m.snapshot->meta.index, "-", ++snapshot_files_, ".snap");
    std::filesystem::rename(*path, dest);
    CF_CHECK(member::Member::VerifyReceivedSnapshot(dest).ok()) << "snapshot file damaged";
    m.snapshot->data = dest;
  }
  if (rng_.Chance(settling_ ? 0 : profile_.drop)) return;
  if (blocked_[from][m.to <= static_cast<raft::NodeId>(n_) ? m.to : 0]) return;
  const int copies = rng_.Chance(settling_ ? 0 : profile_.duplicate) ? 2 : 1;
  for (int i = 0; i < copies; ++i) {
    net_.push(InFlight{now_ + rng_.Range(1, profile_.max_delay_ms), ++seq_, m});
  }
}

void MemberWorld::Start(Node& n) {
  ++n.incarnation;
  auto on_durable = [this, &n](const node::PersistRequest& r) { OnDurable(n, r); };
  auto open = [&] {
    if (!n.env) {
      n.env.reset(rocksdb::NewMemEnv(rocksdb::Env::Default()));
      n.fault_fs = std::make_shared<FaultFileSystem>(n.env->GetFileSystem());
      n.fault_env = NewFaultEnv(n.fault_fs);
    }
    return RocksSimStorage::Open(n.fault_env.get(), n.fault_fs.get(), DataDir(n), &disk_faults_,
                                 &rng_, &now_, on_durable);
  };
  auto st = open();
  if (!st.ok() && absl::IsDataLoss(st.status())) {
    ++result_.corruptions_detected;
    Trace(absl::StrCat("n", n.id, " refuses to start: ", st.status().message()));
    WipeDisk(n);
    st = open();
  }
  CF_CHECK(st.ok()) << "opening n" << n.id << "'s RocksDB: " << st.status().ToString();
  n.storage = std::move(*st);

  member::MemberOptions mo;
  mo.name = absl::StrCat("n", n.id);
  mo.member_id = n.id;
  for (int i = 1; i <= n_; ++i) mo.voters.push_back(i);
  mo.client_urls = {absl::StrCat("http://n", n.id, ":2379")};
  mo.membership.set_cluster_id(0xc1);
  mo.snapshot_dir = SnapDir(n);
  mo.heartbeat_ms = kTickMs;
  mo.election_ticks = kElectionTicks;
  mo.request_timeout_ms = static_cast<int>(kClientTimeoutMs);
  mo.snapshot_count = profile_.snapshot_every;
  mo.snapshot_catchup_entries = 5;
  mo.max_size_per_msg = 4096;
  mo.max_inflight_msgs = 16;
  mo.recovering = n.disk_lost && !opt_.bugs.disk_loss_rejoins_as_new;
  n.disk_lost = false;
  mo.seed = MixSeed(opt_.seed, n.id * 1000 + n.incarnation);
  mo.background_threads = false;
  mo.bugs.reply_before_batch_visible = opt_.bugs.reply_before_batch_visible;
  mo.bugs.reply_by_log_index = opt_.bugs.reply_to_wrong_waiter;
  mo.bugs.lease_no_reset_on_promote = opt_.bugs.lease_no_reset_on_promote;
  mo.bugs.snapshot_forgets_leases = opt_.bugs.snapshot_forgets_leases;
  mo.testing_compaction_resurrects = opt_.bugs.compaction_resurrects;
  mo.testing_count_unpersisted_own_entries = opt_.bugs.commit_before_leader_fsync;
  mo.on_applied = [this, &n](const raft::Entry& e, const internal::Request& req,
                             const member::WriteResult& r) { OnApplied(n, e, req, r); };
  std::filesystem::create_directories(SnapDir(n));
  auto m = member::Member::Open(std::move(mo), n.storage->engine(), n.storage.get(), n.net.get(),
                                static_cast<int64_t>(now_));
  CF_CHECK(m.ok()) << "start of n" << n.id << " failed: " << m.status().ToString();
  n.member = std::move(*m);
  n.up = true;
  n.was_leader = false;
  n.last_revision = n.member->kv().revision();
  n.recovering = n.member->raft_status().hard_state.recovering;
  n.reference = std::make_unique<SimSink>(SIZE_MAX);
  mvcc::WatchSpec all;
  all.key = kWatchKey;
  all.range_end = kWatchEnd;
  all.start_revision = n.member->kv().revision() + 1;
  n.member->watch_hub().Add(n.reference.get(), 0, all);
  Trace(absl::StrCat("start n", n.id, " incarnation ", n.incarnation, " applied ",
                     n.member->applied_index(), " revision ", n.member->kv().revision()));
}

void MemberWorld::StopNode(Node& n) {
  if (n.member) n.member->watch_hub().RemoveAll(n.reference.get());
  for (Client& c : clients_) {
    if (c.watch.sink && c.watch.member == n.id && n.member) {
      n.member->watch_hub().RemoveAll(c.watch.sink.get());
    }
  }
  n.member.reset();
  n.storage.reset();
  n.up = false;
}

void MemberWorld::WipeDisk(Node& n) {
  n.fault_env.reset();
  n.fault_fs.reset();
  n.env.reset();
  std::error_code ec;
  std::filesystem::remove_all(SnapDir(n), ec);
  n.disk_lost = true;
  n.recovering = true;
}

void MemberWorld::Crash(Node& n, const char* why) {
  ++result_.crashes;
  Trace(absl::StrCat("crash n", n.id, " (", why, ")"));
  if (n.member) {
    n.recovering =
        n.member->raft_status().hard_state.recovering || n.storage->InitialHardState().recovering;
    result_.snapshots_installed += n.member->snapshots_installed();
  }
  result_.torn_writes_cut += n.fault_fs->Crash(rng_, settling_ ? 0 : profile_.keep_unsynced);
  StopNode(n);
  n.fault_fs->Restart();
  bool others_recovering = false;
  for (const Node& o : nodes_) others_recovering |= o.id != n.id && o.recovering;
  if (!settling_ && !others_recovering && rng_.Chance(profile_.disk_loss)) {
    ++result_.disks_lost;
    Trace(absl::StrCat("n", n.id, " lost its disk"));
    WipeDisk(n);
  } else if (!settling_ && !others_recovering && rng_.Chance(profile_.bit_flip)) {
    const std::string what = n.fault_fs->FlipBit(rng_, DataDir(n));
    if (!what.empty()) {
      ++result_.bits_flipped;
      Trace(absl::StrCat("n", n.id, " flipped a bit at rest: ", what));
      n.recovering = true;
    }
  }
  n.restart_at = now_ + (settling_ ? 1 : rng_.Range(1, profile_.max_down_ms));
}

void MemberWorld::ObserveRole(Node& n) {
  const raft::Status st = n.member->raft_status();
  if (st.soft_state.role != raft::Role::kLeader) {
    n.was_leader = false;
    return;
  }
  n.was_leader = true;
  SafetyChecker::LogView log;
  log.term_at = [&n](raft::Index i) { return n.member->TermAt(i); };
  log.first_index = n.storage->FirstIndex();
  bool new_leader = false;
  const std::string v = checker_.OnLeader(st.hard_state.term, n.id, log, &new_leader);
  if (!v.empty()) Fail(v);
  if (!new_leader) return;
  ++result_.elections;
  last_election_ms_ = now_;
  Trace(absl::StrCat("n", n.id, " leads term ", st.hard_state.term));
}

void MemberWorld::OnDurable(Node& n, const node::PersistRequest& r) {
  for (const raft::Entry& e : r.entries) {
    if (e.index < n.storage->FirstIndex()) continue;
    std::optional<raft::Term> prev;
    if (e.index == 1) {
      prev = 0;
    } else if (auto t = n.storage->TermAt(e.index - 1); t.ok()) {
      prev = *t;
    }
    const std::string v = checker_.OnDurable(n.id, e, prev);
    if (!v.empty()) Fail(v);
  }
}

void MemberWorld::OnApplied(Node& n, const raft::Entry& e, const internal::Request& req,
                            const member::WriteResult& r) {
  if (const std::string v = checker_.OnApplied(n.id, e); !v.empty()) Fail(v);
  result_.max_commit = std::max<uint64_t>(result_.max_commit, e.index);
  applied_at_.emplace(std::make_pair(req.proposer(), req.id()), e.index);
  const int64_t rev = HeaderRevision(req, r);
  if (rev != 0) {
    // One revision per index on every member, never going back on one member.
    auto [it, fresh] = revision_at_index_.emplace(e.index, rev);
    if (!fresh && it->second != rev) {
      Fail(absl::StrCat("revision: entry ", e.index, " gave revision ", rev, " on n", n.id, " but ",
                        it->second, " elsewhere"));
    }
    if (rev < n.last_revision) {
      Fail(absl::StrCat("revision: n", n.id, " went back from ", n.last_revision, " to ", rev,
                        " at entry ", e.index));
    }
    n.last_revision = rev;
  }
  if (req.has_lease_revoke() && r.status.ok()) {
    auto it = leases_.find(req.lease_revoke().id());
    if (it != leases_.end() && !it->second.revoked) {
      LeaseState& l = it->second;
      l.revoked = true;
      if (l.client_revoked) return;
      ++result_.leases_expired;
      const int64_t from = std::max<int64_t>(static_cast<int64_t>(l.call_ms), l.last_renew_ok);
      Trace(absl::StrCat("lease ", it->first, " revoked (renewed at ", l.last_renew_ok, ")"));
      if (static_cast<int64_t>(now_) < from + kLeaseTtlSeconds * 1000) {
        Fail(absl::StrCat("lease expiry: lease ", it->first, " revoked at ", now_,
                          " ms but it was renewed at ", from, " ms with a TTL of ",
                          kLeaseTtlSeconds * 1000, " ms"));
      }
    }
  }
}

// ---- Clients ----

void MemberWorld::Clients() {
  if (settling_) return;
  for (size_t ci = 0; ci < clients_.size(); ++ci) {
    Client& c = clients_[ci];
    if (c.busy || !rng_.Chance(0.3)) continue;
    // Prefer the member that last led; sometimes any member (a follower forwards).
    raft::NodeId target = rng_.Range(1, n_);
    if (rng_.Chance(0.6)) {
      for (Node& n : nodes_) {
        if (n.up && n.member->leader() != 0) {
          target = n.member->leader();
          break;
        }
      }
    }
    Node& n = N(target);
    if (!n.up) continue;  // connection refused: nothing happened
    IssueKv(ci, n);
  }
}

void MemberWorld::IssueKv(size_t ci, Node& n) {
  Client& c = clients_[ci];
  const std::string key = absl::StrCat("k", rng_.Uniform(opt_.registers));
  const uint64_t r = rng_.Uniform(100);
  if (r < 15) {
    SerializableRead(ci, n, key);
    return;
  }
  Kind kind = r < 45   ? Kind::kPut
              : r < 52 ? Kind::kDelete
              : r < 62 ? Kind::kCas
              : r < 98 ? Kind::kGet
                       : Kind::kCompact;
  if (kind == Kind::kCas && last_written_[key].empty()) kind = Kind::kPut;
  const uint64_t token = next_token_++;
  c.busy = true;
  c.kind = kind;
  c.token = token;
  c.member = n.id;
  c.deadline = now_ + kClientTimeoutMs;
  const raft::NodeId via = n.id;
  if (kind == Kind::kGet) {
    Operation op;
    op.id = token;
    op.client = static_cast<int>(ci);
    op.kind = OpKind::kGet;
    op.key = key;
    op.call = ++logical_;
    history_.push_back(op);
    discarded_.push_back(false);
    c.op = history_.size() - 1;
    n.member->Read([this, ci, token, via](absl::Status s) { OnReadDone(ci, token, via, s); });
    return;
  }
  internal::Request req;
  Operation op;
  op.id = token;
  op.client = static_cast<int>(ci);
  op.key = key;
  if (kind == Kind::kCompact) {
    const int64_t top = n.member->kv().revision();
    req.mutable_compaction()->set_revision(std::max<int64_t>(1, top - rng_.Uniform(3)));
    Trace(absl::StrCat("client ", ci, " compacts at ", req.compaction().revision(), " via n", via));
  } else if (kind == Kind::kDelete) {
    req.mutable_delete_range()->set_key(key);
    op.kind = OpKind::kPut;  // a register: absent reads as ""
  } else {
    op.value = absl::StrCat("c", ci, "v", token);
    if (kind == Kind::kCas) {
      op.kind = OpKind::kCas;
      op.expected = last_written_[key];
      etcdserverpb::TxnRequest* txn = req.mutable_txn();
      etcdserverpb::Compare* cmp = txn->add_compare();
      cmp->set_key(key);
      cmp->set_target(etcdserverpb::Compare::VALUE);
      cmp->set_result(etcdserverpb::Compare::EQUAL);
      cmp->set_value(op.expected);
      etcdserverpb::PutRequest* put = txn->add_success()->mutable_request_put();
      put->set_key(key);
      put->set_value(op.value);
    } else {
      op.kind = OpKind::kPut;
      req.mutable_put()->set_key(key);
      req.mutable_put()->set_value(op.value);
    }
    last_written_[key] = op.value;
    proposed_values_[key].insert(op.value);
  }
  member::Member::Proposal p = n.member->Prepare(std::move(req));
  const std::pair<uint64_t, uint64_t> request_id{n.id, p.id};
  if (kind != Kind::kCompact) {
    op.call = ++logical_;
    history_.push_back(op);
    discarded_.push_back(false);
    c.op = history_.size() - 1;
    acked_.emplace(request_id, SIZE_MAX);  // filled in when acknowledged
  }
  proposing_ = true;  // a reply during the call is Raft's refusal: certainly no effect
  n.member->Propose(std::move(p), [this, ci, token, via, request_id](member::WriteResult r) {
    if (clients_[ci].busy && clients_[ci].token == token && clients_[ci].kind != Kind::kCompact &&
        r.status.ok()) {
      acked_[request_id] = clients_[ci].op;
    }
    OnWriteDone(ci, token, via, std::move(r));
  });
  proposing_ = false;
}

void MemberWorld::OnWriteDone(size_t ci, uint64_t token, raft::NodeId via, member::WriteResult r) {
  Client& c = clients_[ci];
  if (!c.busy || c.token != token) return;
  c.busy = false;
  if (c.kind == Kind::kCompact) {
    if (r.status.ok()) ++result_.compactions;
    return;
  }
  Operation& op = history_[c.op];
  if (!r.status.ok() && proposing_) {
    discarded_[c.op] = true;  // refused before it reached the log
    ++result_.failed_ops;
    return;
  }
  if (!r.status.ok()) {
    op.unknown = true;  // the write may or may not have happened
    ++result_.unknown_writes;
    return;
  }
  op.ret = ++logical_;
  ++result_.acked_writes;
  int64_t rev = 0;
  bool changed = true;
  if (c.kind == Kind::kPut) {
    rev = r.put.header().revision();
  } else if (c.kind == Kind::kDelete) {
    rev = r.delete_range.header().revision();
    changed = r.delete_range.deleted() > 0;
  } else {
    rev = r.txn.header().revision();
    op.cas_ok = r.txn.succeeded();
    changed = op.cas_ok;
  }
  if (changed) {
    auto [it, fresh] = acked_revisions_.emplace(rev, c.op);
    if (!fresh) {
      Fail(absl::StrCat("revision: two acknowledged writes got revision ", rev, ": ",
                        DescribeOperation(history_[it->second]), " and ", DescribeOperation(op)));
    }
  }
  // The client reads its member at once: what it was told is done must be visible there.
  Node& n = N(via);
  if (n.up && n.member->kv().revision() < rev) {
    Fail(absl::StrCat("reply before visible: ", DescribeOperation(op), " acknowledged at revision ",
                      rev, " but n", via, " serves revision ", n.member->kv().revision()));
  }
}

void MemberWorld::OnReadDone(size_t ci, uint64_t token, raft::NodeId via, absl::Status s) {
  Client& c = clients_[ci];
  if (!c.busy || c.token != token) return;
  if (!s.ok()) {
    c.busy = false;
    discarded_[c.op] = true;
    ++result_.failed_ops;
    return;
  }
  // The daemon serves a scan later, on a reader thread: any state from the read index on is as
  // good. Half of the reads here are served a few steps later.
  if (rng_.Chance(0.5)) {
    deferred_reads_.push_back(DeferredRead{ci, token, via, N(via).incarnation});
    return;
  }
  ServeRead(ci, via);
}

void MemberWorld::ServeRead(size_t ci, raft::NodeId via) {
  Client& c = clients_[ci];
  c.busy = false;
  Operation& op = history_[c.op];
  etcdserverpb::RangeRequest req;
  req.set_key(op.key);
  etcdserverpb::RangeResponse resp;
  CF_CHECK(N(via).member->kv().Range(req, &resp).ok()) << "range failed";
  op.output = resp.kvs_size() > 0 ? resp.kvs(0).value() : std::string();
  op.ret = ++logical_;
  ++result_.reads;
}

void MemberWorld::ServeDeferredReads() {
  for (auto it = deferred_reads_.begin(); it != deferred_reads_.end();) {
    Client& c = clients_[it->client];
    Node& n = N(it->via);
    if (c.token != it->token || !c.busy) {
      it = deferred_reads_.erase(it);  // the client gave up
    } else if (!n.up || n.incarnation != it->incarnation) {
      discarded_[c.op] = true;  // the member went away with the connection
      ++result_.failed_ops;
      c.busy = false;
      it = deferred_reads_.erase(it);
    } else if (rng_.Chance(0.3)) {
      ServeRead(it->client, it->via);
      it = deferred_reads_.erase(it);
    } else {
      ++it;
    }
  }
}

void MemberWorld::SerializableRead(size_t ci, Node& n, const std::string& key) {
  etcdserverpb::RangeRequest req;
  req.set_key(key);
  req.set_serializable(true);
  etcdserverpb::RangeResponse resp;
  CF_CHECK(n.member->kv().Range(req, &resp).ok()) << "range failed";
  ++result_.serializable_reads;
  const std::string value = resp.kvs_size() > 0 ? resp.kvs(0).value() : std::string();
  if (!value.empty() && !proposed_values_[key].count(value)) {
    Fail(absl::StrCat("serializable read: n", n.id, " returned ", key, "=", value,
                      ", a value never written"));
  }
  const int64_t rev = resp.header().revision();
  auto [it, fresh] = serializable_sessions_.emplace(std::make_tuple(ci, n.id, n.incarnation), rev);
  if (!fresh) {
    if (rev < it->second) {
      Fail(absl::StrCat("serializable read: client ", ci, " saw revision ", it->second, " then ",
                        rev, " on n", n.id));
    }
    it->second = rev;
  }
  // No revision newer than what this member's applied index produced.
  auto at = revision_at_index_.upper_bound(n.member->applied_index());
  const int64_t limit = at == revision_at_index_.begin() ? 1 : std::prev(at)->second;
  if (rev > limit) {
    Fail(absl::StrCat("serializable read: n", n.id, " served revision ", rev,
                      " beyond its applied index ", n.member->applied_index(), " (revision ", limit,
                      ")"));
  }
}

void MemberWorld::Timeouts() {
  for (Client& c : clients_) {
    if (!c.busy || now_ < c.deadline) continue;
    c.busy = false;
    if (c.kind == Kind::kCompact) continue;
    if (c.kind == Kind::kGet) {
      discarded_[c.op] = true;
    } else {
      history_[c.op].unknown = true;
      ++result_.unknown_writes;
    }
  }
}

void MemberWorld::Leases() {
  if (!settling_) {
    size_t active = 0;
    for (const auto& [id, l] : leases_) active += (!l.revoked && now_ < l.keep_until) ? 1 : 0;
    if (active < 2 && rng_.Chance(0.01)) {
      Node& n = N(rng_.Range(1, n_));
      if (n.up) {
        const int64_t id = next_lease_++;
        internal::Request req;
        req.mutable_lease_grant()->set_id(id);
        req.mutable_lease_grant()->set_ttl(std::max(kLeaseTtlSeconds, n.member->min_lease_ttl()));
        LeaseState l;
        l.call_ms = now_;
        l.keep_until = now_ + rng_.Range(300, 1500);
        leases_[id] = l;
        n.member->Propose(n.member->Prepare(std::move(req)), [this, id](member::WriteResult r) {
          if (r.status.ok() && !leases_[id].granted) {
            leases_[id].granted = true;
            ++result_.leases_granted;
          }
        });
      }
    }
  }
  if (now_ % 50 != 0) return;
  for (auto& [id, l] : leases_) {
    if (!settling_ && !l.revoked && !l.client_revoked && now_ >= l.keep_until &&
        now_ < l.keep_until + 50 && rng_.Chance(0.3)) {
      // Some clients revoke their lease when done instead of letting it lapse.
      Node& n = N(rng_.Range(1, n_));
      if (n.up) {
        l.client_revoked = true;
        internal::Request req;
        req.mutable_lease_revoke()->set_id(id);
        Trace(absl::StrCat("client revokes lease ", id, " via n", n.id));
        n.member->Propose(n.member->Prepare(std::move(req)), [](member::WriteResult) {});
      }
    }
    if (l.revoked || now_ >= l.keep_until) continue;
    for (Node& n : nodes_) {
      if (!n.up || !n.member->is_leader()) continue;
      const etcdserverpb::LeaseKeepAliveResponse resp =
          n.member->KeepAlive(id, static_cast<int64_t>(now_));
      if (resp.ttl() > 0) {
        l.last_renew_ok = static_cast<int64_t>(now_);
      } else if (n.member->kv().HasLease(id)) {
        // Refused: being revoked (expired), or unknown to the leader's lessor, which must
        // know every lease its store holds.
        etcdserverpb::LeaseTimeToLiveRequest q;
        q.set_id(id);
        if (n.member->TimeToLive(q, static_cast<int64_t>(now_)).ttl() == -1) {
          Fail(absl::StrCat("lease keep-alive: leader n", n.id, " holds lease ", id,
                            " but its lessor does not know it"));
        }
      }
      break;
    }
  }
}

void MemberWorld::OpenWatch(size_t ci, ClientWatch& w, int64_t from) {
  std::vector<raft::NodeId> up;
  for (Node& n : nodes_) {
    if (n.up) up.push_back(n.id);
  }
  if (up.empty()) return;
  Node& n = N(up[rng_.Uniform(up.size())]);
  if (from == 0) {
    from = n.member->kv().revision() + 1;
    w = ClientWatch();
    w.active = true;
    w.start = from;
    w.last_covered = from - 1;
  }
  w.member = n.id;
  w.incarnation = n.incarnation;
  w.sink = std::make_unique<SimSink>(rng_.Range(1, 4));
  mvcc::WatchSpec spec;
  spec.key = kWatchKey;
  spec.range_end = kWatchEnd;
  spec.start_revision = from;
  n.member->watch_hub().Add(w.sink.get(), 1, spec);
  Trace(absl::StrCat("client ", ci, " watches on n", n.id, " (revision ", n.member->kv().revision(),
                     ") from revision ", from));
}

void MemberWorld::Watches() {
  for (size_t ci = 0; ci < clients_.size(); ++ci) {
    ClientWatch& w = clients_[ci].watch;
    if (!w.active) {
      if (!settling_ && rng_.Chance(0.01)) OpenWatch(ci, w, 0);
      continue;
    }
    Node& n = N(w.member);
    if (!w.sink || !n.up || n.incarnation != w.incarnation) {
      // The stream broke with its member: what was not read is lost; resume after the last
      // revision received.
      if (w.sink && n.up && n.incarnation == w.incarnation) {
        n.member->watch_hub().RemoveAll(w.sink.get());
      }
      w.sink.reset();
      OpenWatch(ci, w, w.last_covered + 1);
      continue;
    }
    if (!rng_.Chance(0.3)) continue;  // a slow reader
    SimSink& sink = *w.sink;
    while (!sink.queue().empty()) {
      SimSink::Batch b = std::move(sink.queue().front());
      sink.queue().pop_front();
      if (opt_.trace) {
        Trace(absl::StrCat(
            "client ", ci, " reads ", b.events.size(), " events through revision ", b.revision,
            " from n", w.member,
            b.events.empty() ? ""
                             : absl::StrCat(" (first at ", b.events[0].kv().mod_revision(), ")")));
      }
      for (const mvccpb::Event& e : b.events) {
        const int64_t rev = e.kv().mod_revision();
        if (rev <= w.last_covered || rev < w.last_event_rev || rev > b.revision) {
          Fail(absl::StrCat("watch: client ", ci, " got ", Describe(e), " at revision ", rev,
                            " after revision ", w.last_covered, " was complete"));
        }
        w.last_event_rev = rev;
        w.received[rev].push_back(Describe(e));
        ++result_.watch_events;
      }
      w.last_covered = std::max(w.last_covered, b.revision);
    }
    if (sink.compacted()) {
      // Legitimate only when the revision it needed next is gone.
      if (sink.compact_revision() <= w.last_covered + 1) {
        Fail(absl::StrCat("watch: client ", ci, " cancelled as compacted at ",
                          sink.compact_revision(), " but needed revision ", w.last_covered + 1));
      }
      n.member->watch_hub().RemoveAll(w.sink.get());
      w.sink.reset();
      clients_[ci].finished_watches.push_back(std::move(w));
      w = ClientWatch();
      continue;
    }
    if (!settling_ && rng_.Chance(0.002)) {  // the client cancels and later watches anew
      n.member->watch_hub().RemoveAll(w.sink.get());
      w.sink.reset();
      clients_[ci].finished_watches.push_back(std::move(w));
      w = ClientWatch();
    }
  }
}

void MemberWorld::ReadReference(Node& n) {
  if (n.reference->compacted()) {
    // Its catch-up fell below a compaction (after a snapshot install): watch live again.
    n.member->watch_hub().RemoveAll(n.reference.get());
    n.reference = std::make_unique<SimSink>(SIZE_MAX);
    mvcc::WatchSpec all;
    all.key = kWatchKey;
    all.range_end = kWatchEnd;
    all.start_revision = n.member->kv().revision() + 1;
    n.member->watch_hub().Add(n.reference.get(), 0, all);
    return;
  }
  for (SimSink::Batch& b : n.reference->queue()) {
    std::map<int64_t, std::vector<std::string>> by_rev;
    for (const mvccpb::Event& e : b.events) by_rev[e.kv().mod_revision()].push_back(Describe(e));
    for (auto& [rev, events] : by_rev) {
      auto [it, fresh] = reference_events_.emplace(rev, events);
      if (!fresh && it->second != events) {
        Fail(absl::StrCat("watch: members disagree on the events of revision ", rev, " (n", n.id,
                          ": ", events.front(), "; earlier: ", it->second.front(), ")"));
      }
    }
  }
  n.reference->queue().clear();
}

void MemberWorld::CheckWatches() {
  for (size_t ci = 0; ci < clients_.size(); ++ci) {
    std::vector<ClientWatch*> all;
    for (ClientWatch& w : clients_[ci].finished_watches) all.push_back(&w);
    if (clients_[ci].watch.active) all.push_back(&clients_[ci].watch);
    for (ClientWatch* w : all) {
      for (const auto& [rev, events] : w->received) {
        auto it = reference_events_.find(rev);
        if (it != reference_events_.end() && it->second != events) {
          Fail(absl::StrCat("watch: client ", ci, " got other events at revision ", rev, ": ",
                            events.front(), " instead of ", it->second.front()));
        }
      }
      for (auto it = reference_events_.lower_bound(w->start);
           it != reference_events_.end() && it->first <= w->last_covered; ++it) {
        if (!w->received.count(it->first)) {
          Fail(absl::StrCat("watch: client ", ci, " watching from revision ", w->start,
                            " missed revision ", it->first, " (", it->second.front(),
                            ") though it saw everything up to ", w->last_covered));
        }
      }
    }
  }
}

// ---- Faults and the loop ----

void MemberWorld::Faults() {
  for (Node& n : nodes_) {
    if (!n.up && now_ >= n.restart_at) Start(n);
  }
  if (settling_) return;
  if (rng_.Chance(profile_.crash_rate)) {
    Node* victim = &nodes_[rng_.Uniform(n_)];
    if (rng_.Chance(profile_.crash_leader)) {
      for (Node& n : nodes_) {
        if (n.up && n.member->is_leader()) victim = &n;
      }
    }
    if (victim->up) Crash(*victim, "power loss");
  }
  if (partition_until_ != 0 && now_ >= partition_until_) {
    for (auto& row : blocked_) std::fill(row.begin(), row.end(), false);
    partition_until_ = 0;
    Trace("partition healed");
  }
  if (partition_until_ == 0 && rng_.Chance(profile_.partition_rate)) {
    partition_until_ = now_ + rng_.Range(50, profile_.partition_ms);
    if (profile_.isolate_leader) {
      raft::NodeId lead = raft::kNoNode;
      for (Node& n : nodes_) {
        if (n.up && n.member->is_leader()) lead = n.id;
      }
      Trace("partition: " + IsolateLeader(blocked_, n_, lead, rng_));
      return;
    }
    const int x = static_cast<int>(rng_.Range(1, n_));
    if (rng_.Chance(0.5)) {
      for (int b = 1; b <= n_; ++b) blocked_[x][b] = blocked_[b][x] = b != x;
      Trace(absl::StrCat("partition: isolate n", x));
    } else {
      for (int a = 1; a <= n_; ++a) {
        for (int b = 1; b <= n_; ++b) blocked_[a][b] = a != b && rng_.Chance(0.3);
      }
      Trace("partition: one-way links");
    }
  }
  if (rng_.Chance(profile_.transfer_rate)) {
    for (Node& n : nodes_) {
      if (n.up && n.member->is_leader()) {
        Trace(absl::StrCat("n", n.id, " hands leadership over"));
        n.member->TransferLeadership(0);  // as on SIGTERM
        break;
      }
    }
  }
}

void MemberWorld::Deliver() {
  while (!net_.empty() && net_.top().at <= now_) {
    raft::Message msg = net_.top().msg;
    net_.pop();
    if (msg.to == 0 || msg.to > static_cast<raft::NodeId>(n_)) continue;
    if (msg.from >= 1 && msg.from <= static_cast<raft::NodeId>(n_) && blocked_[msg.from][msg.to]) {
      continue;
    }
    Node& n = N(msg.to);
    if (!n.up) continue;
    // A snapshot file the receiver cleaned away (restart, later install): the stream failed.
    if (msg.snapshot && !msg.snapshot->data.empty() &&
        !std::filesystem::exists(msg.snapshot->data)) {
      continue;
    }
    n.member->Step(std::move(msg));
    ObserveRole(n);
  }
}

void MemberWorld::PumpAll() {
  for (Node& n : nodes_) {
    if (!n.up) continue;
    n.member->Pump();
    if (n.member->stopped()) {
      if (absl::StartsWith(n.member->stop_reason().message(), "VIOLATION")) {
        Fail(std::string(n.member->stop_reason().message()));
      }
      ++result_.fsync_failures;
      Crash(n, "fsync failed");
      continue;
    }
    ObserveRole(n);
    ReadReference(n);
  }
}

void MemberWorld::Background() {
  // What the compactor, the watch catch-up and the reader threads do in production, in a
  // seeded order.
  ServeDeferredReads();
  for (Node& n : nodes_) {
    if (!n.up) continue;
    if (rng_.Chance(0.2)) n.member->kv().CompactStep();
    if (rng_.Chance(0.5)) n.member->watch_hub().CatchUpStep();
  }
}

void MemberWorld::StepOnce() {
  ++now_;
  Faults();
  for (Node& n : nodes_) {
    if (n.up) n.member->SetTime(static_cast<int64_t>(now_));
  }
  Deliver();
  for (Node& n : nodes_) {
    if (n.up && (now_ + n.id) % kTickMs == 0) {
      n.member->Tick();
      ObserveRole(n);
    }
  }
  Clients();
  Leases();
  PumpAll();
  Background();
  Watches();
  Timeouts();
  for (Node& n : nodes_) {
    if (!n.up) continue;
    const bool r = n.member->raft_status().hard_state.recovering;
    if (n.recovering && !r) {
      ++result_.recoveries_finished;
      Trace(absl::StrCat("n", n.id, " finished disk-loss recovery"));
    }
    n.recovering = r;
  }
}

bool MemberWorld::Converged(std::string* why) {
  raft::NodeId lead = raft::kNoNode;
  for (Node& n : nodes_) {
    if (!n.up) {
      *why = absl::StrCat("n", n.id, " is down");
      return false;
    }
    if (n.member->raft_status().hard_state.recovering) {
      *why = absl::StrCat("n", n.id, " is still recovering from disk loss");
      return false;
    }
    if (n.member->raft_status().soft_state.role == raft::Role::kLeader) lead = n.id;
  }
  if (lead == raft::kNoNode) {
    *why = "no leader";
    return false;
  }
  const raft::Status ls = N(lead).member->raft_status();
  for (Node& n : nodes_) {
    const raft::Status st = n.member->raft_status();
    if (st.soft_state.lead != lead || n.member->raft_applied() != ls.last_index ||
        n.member->writes_in_flight() != 0 || st.hard_state.commit != ls.last_index) {
      *why = absl::StrCat("n", n.id, " lead=", st.soft_state.lead,
                          " applied=", n.member->raft_applied(), " commit=", st.hard_state.commit,
                          " leader n", lead, " last=", ls.last_index);
      return false;
    }
  }
  return true;
}

void MemberWorld::FinalChecks() {
  // Log matching over whole logs.
  for (int a = 0; a < n_; ++a) {
    for (int b = a + 1; b < n_; ++b) {
      RocksSimStorage& x = *nodes_[a].storage;
      RocksSimStorage& y = *nodes_[b].storage;
      const raft::Index lo = std::max(x.FirstIndex(), y.FirstIndex());
      const raft::Index hi = std::min(x.LastIndex(), y.LastIndex());
      if (lo > hi) continue;
      auto ex = x.Entries(lo, hi + 1, raft::kNoLimit);
      auto ey = y.Entries(lo, hi + 1, raft::kNoLimit);
      CF_CHECK(ex.ok() && ey.ok()) << "final log read failed";
      if (*ex != *ey) Fail(absl::StrCat("log matching: n", a + 1, " and n", b + 1, " differ"));
    }
  }
  // HashKV equal at the same revision on every member.
  uint32_t hash0 = 0;
  int64_t rev0 = 0;
  for (Node& n : nodes_) {
    uint32_t hash = 0;
    int64_t rev = 0;
    CF_CHECK(n.member->kv().HashKV(0, &hash, &rev).ok()) << "HashKV failed";
    if (n.id == 1) {
      hash0 = hash;
      rev0 = rev;
    } else if (hash != hash0 || rev != rev0) {
      Fail(absl::StrCat("HashKV: n1 has ", hash0, " at revision ", rev0, ", n", n.id, " has ", hash,
                        " at revision ", rev));
    }
  }
  // Durability: every acknowledged write is in the log, applied on every member.
  for (const auto& [request, op] : acked_) {
    if (op == SIZE_MAX) continue;
    auto at = applied_at_.find(request);
    if (at == applied_at_.end()) {
      Fail(absl::StrCat("durability: acknowledged ", DescribeOperation(history_[op]),
                        " is in no member's log"));
    }
    for (Node& n : nodes_) {
      if (n.member->applied_index() < at->second) {
        Fail(absl::StrCat("durability: n", n.id, " has not applied entry ", at->second, " (",
                          DescribeOperation(history_[op]), ")"));
      }
    }
  }
  std::vector<Operation> kept;
  for (size_t i = 0; i < history_.size(); ++i) {
    if (!discarded_[i]) kept.push_back(history_[i]);
  }
  const LinearizabilityReport lin = CheckLinearizable(kept);
  if (lin.result == LinearizabilityResult::kViolation) {
    Fail(absl::StrCat("linearizability: register ", lin.key, " history has no linearization:\n",
                      lin.explanation));
  }
  result_.linearizability_inconclusive = lin.result == LinearizabilityResult::kInconclusive;
  CheckWatches();
  // Every lease left to lapse was revoked.
  for (const auto& [id, l] : leases_) {
    if (l.revoked) continue;
    const bool exists = nodes_[0].member->kv().HasLease(id);
    if (exists) {
      Fail(absl::StrCat("lease expiry: lease ", id, " (last renewed at ", l.last_renew_ok,
                        " ms, kept alive until ", l.keep_until, " ms) still exists at ", now_,
                        " ms"));
    }
  }
}

SimResult MemberWorld::Run() {
  try {
    for (Node& n : nodes_) Start(n);
    while (now_ < opt_.duration_ms) StepOnce();
    settling_ = true;
    for (auto& row : blocked_) std::fill(row.begin(), row.end(), false);
    disk_faults_.fsync_failure = 0;
    const uint64_t settle_end = now_ + opt_.settle_ms;
    std::string why;
    bool converged = false;
    while (now_ < settle_end) {
      StepOnce();
      if (now_ % kTickMs == 0 && Converged(&why)) {
        converged = true;
        break;
      }
    }
    if (!converged) Fail("liveness: no convergence after settling: " + why);
    // A lease left to lapse expires within its TTL of its last renewal, or of the last
    // leader's promotion (which gives every lease its TTL plus an election timeout again),
    // whichever is later; wait that long (and a few election timeouts for the revoke).
    auto lease_quiet = [&] {
      uint64_t until = last_election_ms_ + kLeaseTtlSeconds * 1000 + kElectionMs;
      for (const auto& [id, l] : leases_) {
        const uint64_t last = std::max<uint64_t>(l.keep_until, l.last_renew_ok);
        until = std::max<uint64_t>(until, last + kLeaseTtlSeconds * 1000);
      }
      return until + 4 * kElectionMs;
    };
    for (const uint64_t cap = now_ + 10000; now_ < lease_quiet() && now_ < cap;) StepOnce();
    for (Client& c : clients_) c.deadline = 0;
    Timeouts();
    for (int i = 0; i < 200 && !Converged(&why); ++i) StepOnce();
    if (!Converged(&why)) Fail("liveness: no convergence after the lease wait: " + why);
    for (Node& n : nodes_) {
      while (n.member->kv().CompactStep()) {
      }
      while (n.member->watch_hub().CatchUpStep()) {
      }
    }
    Watches();
    FinalChecks();
    for (Node& n : nodes_) result_.snapshots_installed += n.member->snapshots_installed();
  } catch (const Violation& v) {
    result_.ok = false;
    result_.failure = v.what();
  }
  return result_;
}

}  // namespace

SimResult RunMemberSimulation(const SimOptions& options) {
  FatalHandler previous = SetFatalHandler(&ThrowViolation);
  const auto level = spdlog::get_level();
  spdlog::set_level(options.trace ? spdlog::level::info : spdlog::level::warn);
  SimResult result;
  {
    MemberWorld world(options);
    result = world.Run();
  }
  spdlog::set_level(level);
  SetFatalHandler(previous);
  return result;
}

}  // namespace chainfire::sim
