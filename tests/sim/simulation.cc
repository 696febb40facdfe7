// The register world: N RawNode members (the stand-in register application, the simulated
// disk or RocksDB through the fault FS), the simulated network, clients and faults, one seed.
// The member world (member_world.cc) runs the real Member; the fault profiles shared by both
// are in fault_profiles.cc. Over 700 lines on purpose: the World's steps (faults, delivery,
// clients, timeouts, final checks) share its state and are read together.
#include "simulation.h"

#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <set>
#include <stdexcept>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "chainfire/common/check.h"
#include "chainfire/common/random.h"
#include "chainfire/node/lessor.h"
#include "chainfire/node/raft_node.h"
#include "linearizability.h"
#include "register_app.h"
#include "rocks_sim_storage.h"
#include "rocksdb/env.h"
#include "safety_checker.h"
#include "sim_disk.h"

namespace chainfire::sim {

std::string IsolateLeader(std::vector<std::vector<bool>>& blocked, int n, uint64_t leader,
                          Random& rng) {
  if (leader == 0) return "no leader to isolate";
  const bool outbound_only = rng.Chance(0.5);
  for (int b = 1; b <= n; ++b) {
    if (static_cast<uint64_t>(b) == leader) continue;
    blocked[leader][b] = true;
    blocked[b][leader] = !outbound_only;
  }
  return absl::StrCat(outbound_only ? "leader n" : "isolate leader n", leader,
                      outbound_only ? " cannot send" : "");
}

namespace {

struct SimViolation : std::runtime_error {
  using std::runtime_error::runtime_error;
};
[[noreturn]] void ThrowViolation(const std::string& what) { throw SimViolation(what); }

constexpr uint64_t kTickMs = 10;
constexpr int64_t kElectionMs = 100;  // election_tick * kTickMs
constexpr int64_t kLeaseTtlMs = 300;
constexpr uint64_t kClientTimeoutMs = 1000;

class World;

class NetTransport : public node::Transport {
 public:
  NetTransport(World* world) : world_(world) {}
  void Send(raft::Message m) override;

 private:
  World* world_;
};

struct Member {
  raft::NodeId id = 0;
  std::unique_ptr<node::Lessor> lessor;
  bool was_leader = false;
  SimDisk disk;
  std::unique_ptr<rocksdb::Env> env;          // RocksDB's in-memory Env (declared first: dies last)
  std::shared_ptr<FaultFileSystem> fault_fs;  // over env's file system
  std::unique_ptr<rocksdb::Env> fault_env;    // what RocksDB runs on
  std::unique_ptr<node::NodeStorage> storage;
  SimStorage* sim_storage = nullptr;  // set when the member runs on SimDisk
  std::unique_ptr<RegisterApp> app;
  std::unique_ptr<node::RaftNode> node;
  std::unique_ptr<NetTransport> transport;
  bool up = false;
  uint64_t restart_at = 0;
  uint64_t incarnation = 0;
  bool disk_lost = false;   // restart in disk-loss recovery (Config::recovering)
  bool recovering = false;  // as last seen: lost its disk and has not finished recovering
};

struct InFlight {
  uint64_t at;
  uint64_t seq;
  raft::Message msg;
};
struct Later {
  bool operator()(const InFlight& a, const InFlight& b) const {
    return a.at != b.at ? a.at > b.at : a.seq > b.seq;
  }
};

struct Client {
  bool busy = false;
  size_t op = 0;  // index into history_
  size_t member = 0;
  uint64_t deadline = 0;
};

class World {
 public:
  explicit World(const SimOptions& o) : opt_(o), profile_(o.profile), rng_(o.seed) {
    real_storage_ = o.storage == StorageKind::kRocksDbInMemory || o.profile.rocksdb_only ||
                    (o.storage == StorageKind::kAuto && (o.seed / 7) % 4 == 0);
    result_.real_storage = real_storage_;
    n_ = profile_.nodes != 0 ? profile_.nodes : (rng_.Chance(0.5) ? 3 : 5);
    disk_faults_ = DiskFaultsFor(o);
    members_.resize(n_);
    blocked_.assign(n_ + 1, std::vector<bool>(n_ + 1, false));
    for (int i = 0; i < n_; ++i) {
      members_[i].id = i + 1;
      members_[i].transport = std::make_unique<NetTransport>(this);
    }
    clients_.resize(opt_.clients);
  }

  SimResult Run();
  void Enqueue(raft::Message m);

 private:
  Member& M(raft::NodeId id) { return members_[id - 1]; }
  void Trace(const std::string& s) {
    if (opt_.trace) std::printf("[%6llu] %s\n", static_cast<unsigned long long>(now_), s.c_str());
  }
  void Fail(const std::string& what) { throw SimViolation(what); }

  void Start(Member& m);
  void Crash(Member& m, const char* why);
  void StepOnce(bool faults);
  void Faults();
  void Deliver();
  void PumpAll();
  void Clients();
  void Timeouts();
  bool Converged(std::string* why);
  void FinalChecks();

  // Checkers.
  void ObserveRole(Member& m);
  std::string DataDir(const Member& m) const;
  void WipeDisk(Member& m);
  void OnEntryApplied(Member& m, const raft::Entry& e);
  void OnDurable(Member& m, const node::PersistRequest& r);

  // Client completions.
  void OnCommandApplied(Member& m, uint64_t op_id, bool cas_ok);
  void OnReadReady(Member& m, uint64_t read_id);
  void OnReadFailed(uint64_t read_id);
  void FinishOp(Client& c) { c.busy = false; }

  SimOptions opt_;
  FaultProfile profile_;
  Random rng_;
  int n_;
  uint64_t now_ = 0;
  uint64_t logical_ = 0;
  uint64_t seq_ = 0;
  DiskFaults disk_faults_;
  std::vector<Member> members_;
  std::priority_queue<InFlight, std::vector<InFlight>, Later> net_;
  std::vector<std::vector<bool>> blocked_;
  uint64_t partition_until_ = 0;
  bool settling_ = false;
  bool real_storage_ = false;

  std::vector<Client> clients_;
  std::vector<Operation> history_;
  std::vector<bool> discarded_;
  std::map<uint64_t, size_t> pending_writes_;  // op id -> client
  std::map<uint64_t, size_t> pending_reads_;   // op id -> client
  std::map<std::string, std::string> last_written_;
  uint64_t next_op_ = 1;

  SafetyChecker checker_;
  // Leases: a client grants a few, renews them at whichever member its contact says leads,
  // then lets them lapse. No lease may be revoked before its last renewal plus its TTL.
  struct LeaseState {
    int64_t ttl_ms = kLeaseTtlMs;
    uint64_t keep_until = 0;
    int64_t last_renew_ok = 0;
    bool granted = false;
    bool revoked = false;
  };
  std::map<int64_t, LeaseState> leases_;
  int64_t next_lease_ = 1;
  void LeaseClient();
  void ExpireLeases();
  void OnLeaseRevoked(int64_t id);
  SimResult result_;
};

void NetTransport::Send(raft::Message m) { world_->Enqueue(std::move(m)); }

void World::Enqueue(raft::Message m) {
  ++result_.messages;
  if (rng_.Chance(settling_ ? 0 : profile_.drop)) return;
  if (blocked_[m.from <= static_cast<raft::NodeId>(n_) ? m.from : 0][m.to]) return;
  const int copies = rng_.Chance(settling_ ? 0 : profile_.duplicate) ? 2 : 1;
  for (int i = 0; i < copies; ++i) {
    net_.push(InFlight{now_ + rng_.Range(1, profile_.max_delay_ms), ++seq_, m});
  }
}

void World::Start(Member& m) {
  ++m.incarnation;
  auto on_durable = [this, &m](const node::PersistRequest& r) { OnDurable(m, r); };
  if (real_storage_) {
    auto open = [&] {
      if (!m.env) {
        m.env.reset(rocksdb::NewMemEnv(rocksdb::Env::Default()));
        m.fault_fs = std::make_shared<FaultFileSystem>(m.env->GetFileSystem());
        m.fault_env = NewFaultEnv(m.fault_fs);
      }
      return RocksSimStorage::Open(m.fault_env.get(), m.fault_fs.get(), DataDir(m), &disk_faults_,
                                   &rng_, &now_, on_durable);
    };
    auto st = open();
    if (!st.ok() && absl::IsDataLoss(st.status())) {
      // The member refuses to start on a damaged data dir; the operator wipes it and the
      // member rejoins in disk-loss recovery.
      ++result_.corruptions_detected;
      Trace(absl::StrCat("n", m.id, " refuses to start: ", st.status().message()));
      WipeDisk(m);
      st = open();
    }
    CF_CHECK(st.ok()) << "opening n" << m.id << "'s RocksDB: " << st.status().ToString();
    m.storage = std::move(*st);
    m.sim_storage = nullptr;
  } else {
    auto st = std::make_unique<SimStorage>(&m.disk, &disk_faults_, &rng_, &now_, on_durable);
    m.sim_storage = st.get();
    result_.torn_writes_cut += st->torn_records_cut();
    m.storage = std::move(st);
  }

  AppHooks hooks;
  hooks.on_entry_applied = [this, &m](const raft::Entry& e) { OnEntryApplied(m, e); };
  hooks.on_command_applied = [this, &m](uint64_t id, bool ok) { OnCommandApplied(m, id, ok); };
  hooks.on_read_ready = [this, &m](uint64_t id) { OnReadReady(m, id); };
  hooks.on_read_failed = [this](uint64_t id) { OnReadFailed(id); };
  hooks.on_soft_state = [this, &m](const raft::SoftState&) { ObserveRole(m); };
  m.lessor = std::make_unique<node::Lessor>(opt_.bugs.lease_no_reset_on_promote);
  m.was_leader = false;
  hooks.on_lease_granted = [this, &m](int64_t id, int64_t ttl) {
    m.lessor->Grant(id, ttl, static_cast<int64_t>(now_));
    auto it = leases_.find(id);
    if (it != leases_.end() && !it->second.granted) {
      it->second.granted = true;
      ++result_.leases_granted;
    }
  };
  hooks.on_lease_revoked = [this, &m](int64_t id) {
    m.lessor->Revoke(id);
    OnLeaseRevoked(id);
  };
  hooks.on_leases_restored = [this, &m](const std::map<int64_t, int64_t>& leases) {
    for (const auto& [id, ttl] : leases) m.lessor->Grant(id, ttl, static_cast<int64_t>(now_));
  };
  m.app = std::make_unique<RegisterApp>(std::move(hooks));
  raft::Config cfg;
  cfg.id = m.id;
  for (int i = 1; i <= n_; ++i) cfg.voters.push_back(i);
  cfg.election_tick = 10;
  cfg.heartbeat_tick = 1;
  cfg.max_size_per_msg = 4096;
  cfg.max_inflight_msgs = 16;
  cfg.seed = MixSeed(opt_.seed, m.id * 1000 + m.incarnation);
  cfg.testing_count_unpersisted_own_entries = opt_.bugs.commit_before_leader_fsync;
  cfg.recovering = m.disk_lost && !opt_.bugs.disk_loss_rejoins_as_new;
  m.disk_lost = false;
  node::NodeOptions nopt;
  nopt.snapshot_every = profile_.snapshot_every;
  nopt.compaction_margin = 5;
  auto node = node::RaftNode::Create(cfg, nopt, m.storage.get(), m.transport.get(), m.app.get());
  CF_CHECK(node.ok()) << "restart of node " << m.id << " failed: " << node.status().ToString();
  m.node = std::move(*node);
  m.up = true;
  m.recovering = m.node->status().hard_state.recovering;
  Trace(absl::StrCat("start n", m.id, " incarnation ", m.incarnation, " last index ",
                     m.storage->LastIndex()));
}

std::string World::DataDir(const Member& m) const { return absl::StrCat("/sim/n", m.id); }

void World::WipeDisk(Member& m) {
  m.disk = SimDisk();
  m.fault_env.reset();
  m.fault_fs.reset();
  m.env.reset();
  m.disk_lost = true;
  m.recovering = true;
}

void World::Crash(Member& m, const char* why) {
  ++result_.crashes;
  Trace(absl::StrCat("crash n", m.id, " (", why, ")"));
  m.disk.Crash(rng_, settling_ ? 0 : profile_.keep_unsynced, opt_.bugs.fsync_lies);
  // Recovering as far as its disk knows (a finish not yet durable is lost with the crash).
  if (m.node) {
    m.recovering =
        m.node->status().hard_state.recovering || m.storage->InitialHardState().recovering;
  }
  if (m.fault_fs)
    result_.torn_writes_cut += m.fault_fs->Crash(rng_, settling_ ? 0 : profile_.keep_unsynced);
  m.node.reset();
  m.app.reset();
  m.storage.reset();
  m.sim_storage = nullptr;
  if (m.fault_fs) m.fault_fs->Restart();
  // Disk loss: only while every other member holds its disk (two at once can lose a quorum's
  // copies of a committed entry, which no protocol survives).
  bool others_recovering = false;
  for (const Member& o : members_) others_recovering |= o.id != m.id && o.recovering;
  if (!settling_ && !others_recovering && rng_.Chance(profile_.disk_loss)) {
    ++result_.disks_lost;
    Trace(absl::StrCat("n", m.id, " lost its disk"));
    WipeDisk(m);
  } else if (m.fault_fs && !settling_ && !others_recovering && rng_.Chance(profile_.bit_flip)) {
    const std::string what = m.fault_fs->FlipBit(rng_, DataDir(m));
    if (!what.empty()) {
      ++result_.bits_flipped;
      Trace(absl::StrCat("n", m.id, " flipped a bit at rest: ", what));
      m.recovering = true;  // if the open refuses it; Start learns the truth
    }
  }
  m.up = false;
  m.restart_at = now_ + (settling_ ? 1 : rng_.Range(1, profile_.max_down_ms));
  // Requests in flight at this member: writes may or may not have committed; reads are void.
  for (size_t ci = 0; ci < clients_.size(); ++ci) {
    Client& c = clients_[ci];
    if (!c.busy || c.member != static_cast<size_t>(m.id - 1)) continue;
    Operation& op = history_[c.op];
    if (op.kind == OpKind::kGet) {
      discarded_[c.op] = true;
      pending_reads_.erase(op.id);
    } else {
      op.unknown = true;
      pending_writes_.erase(op.id);
      ++result_.unknown_writes;
    }
    FinishOp(c);
  }
}

void World::ObserveRole(Member& m) {
  const raft::Status st = m.node->status();
  if (st.soft_state.role != raft::Role::kLeader) {
    m.was_leader = false;
    return;
  }
  if (!m.was_leader) {
    m.was_leader = true;
    m.lessor->Promote(static_cast<int64_t>(now_), kElectionMs);
  }
  SafetyChecker::LogView log;
  log.term_at = [&m](raft::Index i) { return m.node->TermAt(i); };
  log.first_index = m.storage->FirstIndex();
  bool new_leader = false;
  const std::string v = checker_.OnLeader(st.hard_state.term, m.id, log, &new_leader);
  if (!v.empty()) Fail(v);
  if (!new_leader) return;
  ++result_.elections;
  Trace(absl::StrCat("n", m.id, " leads term ", st.hard_state.term));
}

void World::OnEntryApplied(Member& m, const raft::Entry& e) {
  const std::string v = checker_.OnApplied(m.id, e);
  if (!v.empty()) Fail(v);
  result_.max_commit = std::max<uint64_t>(result_.max_commit, e.index);
}

void World::OnDurable(Member& m, const node::PersistRequest& r) {
  if (r.snapshot) ++result_.snapshots_installed;
  const std::string v = checker_.OnDurableEntries(m.id, r.entries, *m.storage);
  if (!v.empty()) Fail(v);
}

void World::OnLeaseRevoked(int64_t id) {
  auto it = leases_.find(id);
  if (it == leases_.end() || it->second.revoked) return;
  it->second.revoked = true;
  ++result_.leases_expired;
  const int64_t earliest = it->second.last_renew_ok + it->second.ttl_ms;
  if (static_cast<int64_t>(now_) < earliest) {
    Fail(absl::StrCat("lease expiry: lease ", id, " revoked at ", now_,
                      " ms but it was renewed at ", it->second.last_renew_ok, " ms with a TTL of ",
                      it->second.ttl_ms, " ms"));
  }
}

void World::LeaseClient() {
  if (settling_) return;
  size_t active = 0;
  for (const auto& [id, l] : leases_) active += (!l.revoked && now_ < l.keep_until) ? 1 : 0;
  if (active < 3 && rng_.Chance(0.01)) {
    const int64_t id = next_lease_++;
    Member& m = members_[rng_.Uniform(n_)];
    if (m.up) {
      Command cmd;
      cmd.op_id = next_op_++;
      cmd.kind = 'G';
      cmd.key = absl::StrCat(id);
      cmd.value = absl::StrCat(kLeaseTtlMs);
      if (m.node->Propose(EncodeCommand(cmd)).ok()) {
        LeaseState l;
        l.keep_until = now_ + rng_.Range(300, 1500);
        leases_[id] = l;
      }
    }
  }
  if (now_ % 50 != 0) return;
  // Renew through a random member, which forwards to the member it believes leads.
  for (auto& [id, l] : leases_) {
    if (!l.granted || l.revoked || now_ >= l.keep_until) continue;
    Member& via = members_[rng_.Uniform(n_)];
    if (!via.up) continue;
    const raft::NodeId lead = via.node->status().soft_state.lead;
    if (lead == raft::kNoNode || !M(lead).up) continue;
    Member& leader = M(lead);
    if (leader.node->status().soft_state.role != raft::Role::kLeader) continue;
    if (leader.lessor->Renew(id, static_cast<int64_t>(now_)) > 0) {
      l.last_renew_ok = static_cast<int64_t>(now_);
    }
  }
}

void World::ExpireLeases() {
  for (Member& m : members_) {
    if (!m.up || m.node->status().soft_state.role != raft::Role::kLeader) continue;
    for (int64_t id : m.lessor->TakeExpired(static_cast<int64_t>(now_))) {
      Command cmd;
      cmd.op_id = next_op_++;
      cmd.kind = 'R';
      cmd.key = absl::StrCat(id);
      if (!m.node->Propose(EncodeCommand(cmd)).ok()) m.lessor->RevokeFailed(id);
    }
  }
}

void World::OnCommandApplied(Member& m, uint64_t op_id, bool cas_ok) {
  auto it = pending_writes_.find(op_id);
  if (it == pending_writes_.end()) return;
  Client& c = clients_[it->second];
  if (c.member != static_cast<size_t>(m.id - 1)) return;  // another member's client waits
  Operation& op = history_[c.op];
  op.ret = ++logical_;
  op.cas_ok = cas_ok;
  ++result_.acked_writes;
  pending_writes_.erase(it);
  FinishOp(c);
}

void World::OnReadReady(Member& m, uint64_t read_id) {
  auto it = pending_reads_.find(read_id);
  if (it == pending_reads_.end()) return;
  Client& c = clients_[it->second];
  Operation& op = history_[c.op];
  op.output = m.app->Get(op.key);
  op.ret = ++logical_;
  ++result_.reads;
  pending_reads_.erase(it);
  FinishOp(c);
}

void World::OnReadFailed(uint64_t read_id) {
  auto it = pending_reads_.find(read_id);
  if (it == pending_reads_.end()) return;
  Client& c = clients_[it->second];
  discarded_[c.op] = true;
  ++result_.failed_ops;
  pending_reads_.erase(it);
  FinishOp(c);
}

void World::Faults() {
  for (Member& m : members_) {
    if (!m.up && now_ >= m.restart_at) Start(m);
  }
  if (settling_) return;
  if (rng_.Chance(profile_.crash_rate)) {
    Member* victim = &members_[rng_.Uniform(n_)];
    if (rng_.Chance(profile_.crash_leader)) {
      for (Member& m : members_) {
        if (m.up && m.node->status().soft_state.role == raft::Role::kLeader) victim = &m;
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
    const uint64_t kind = profile_.isolate_leader ? 3 : rng_.Uniform(3);
    std::string desc;
    if (kind == 3) {
      raft::NodeId lead = raft::kNoNode;
      for (Member& m : members_) {
        if (m.up && m.node->status().soft_state.role == raft::Role::kLeader) lead = m.id;
      }
      desc = IsolateLeader(blocked_, n_, lead, rng_);
    } else if (kind == 0) {  // symmetric split into two random sides
      std::vector<int> side(n_ + 1);
      for (int i = 1; i <= n_; ++i) side[i] = static_cast<int>(rng_.Uniform(2));
      for (int a = 1; a <= n_; ++a) {
        for (int b = 1; b <= n_; ++b) blocked_[a][b] = side[a] != side[b];
      }
      desc = "symmetric split";
    } else if (kind == 1) {  // isolate one member
      const int x = static_cast<int>(rng_.Range(1, n_));
      for (int b = 1; b <= n_; ++b) blocked_[x][b] = blocked_[b][x] = b != x;
      desc = absl::StrCat("isolate n", x);
    } else {  // one-way: some links lose messages in one direction only
      for (int a = 1; a <= n_; ++a) {
        for (int b = 1; b <= n_; ++b) blocked_[a][b] = a != b && rng_.Chance(0.3);
      }
      desc = "one-way links";
    }
    Trace("partition: " + desc);
  }
  if (rng_.Chance(profile_.transfer_rate)) {
    for (Member& m : members_) {
      if (m.up && m.node->status().soft_state.role == raft::Role::kLeader) {
        const raft::NodeId target = rng_.Range(1, n_);
        Trace(absl::StrCat("transfer leadership n", m.id, " -> n", target));
        m.node->TransferLeader(target);
        break;
      }
    }
  }
}

void World::Deliver() {
  while (!net_.empty() && net_.top().at <= now_) {
    raft::Message msg = net_.top().msg;
    net_.pop();
    if (msg.to == 0 || msg.to > static_cast<raft::NodeId>(n_)) continue;
    if (msg.from >= 1 && msg.from <= static_cast<raft::NodeId>(n_) && blocked_[msg.from][msg.to]) {
      continue;
    }
    Member& m = M(msg.to);
    if (!m.up) continue;
    (void)m.node->Step(std::move(msg));
    ObserveRole(m);
  }
}

void World::PumpAll() {
  for (Member& m : members_) {
    if (!m.up) continue;
    for (int i = 0; i < 10000 && m.node->PumpOnce(); ++i) {
    }
    if (m.node->stopped()) {
      if (absl::StartsWith(m.node->stop_reason().message(), "VIOLATION")) {
        Fail(std::string(m.node->stop_reason().message()));
      }
      ++result_.fsync_failures;
      Crash(m, "fsync failed");
    }
  }
}

void World::Clients() {
  if (settling_) return;
  for (size_t ci = 0; ci < clients_.size(); ++ci) {
    Client& c = clients_[ci];
    if (c.busy || !rng_.Chance(0.3)) continue;
    Operation op;
    op.id = next_op_++;
    op.client = static_cast<int>(ci);
    op.key = absl::StrCat("k", rng_.Uniform(opt_.registers));
    const uint64_t r = rng_.Uniform(10);
    op.kind = r < 4 ? OpKind::kPut : (r < 8 ? OpKind::kGet : OpKind::kCas);
    // Prefer the member that last led; sometimes any member (a follower forwards).
    size_t target = rng_.Uniform(n_);
    if (rng_.Chance(0.6)) {
      for (Member& m : members_) {
        if (m.up && m.node->status().soft_state.lead != raft::kNoNode) {
          target = m.node->status().soft_state.lead - 1;
          break;
        }
      }
    }
    Member& m = members_[target];
    if (!m.up) continue;  // connection refused: nothing happened
    op.call = ++logical_;
    if (op.kind == OpKind::kGet) {
      if (opt_.bugs.read_without_read_index) {
        op.output = m.app->Get(op.key);
        op.ret = ++logical_;
        ++result_.reads;
        history_.push_back(op);
        discarded_.push_back(false);
        continue;
      }
      history_.push_back(op);
      discarded_.push_back(false);
      c = Client{true, history_.size() - 1, target, now_ + kClientTimeoutMs};
      pending_reads_[op.id] = ci;
      m.node->Read(op.id);
      continue;
    }
    Command cmd;
    cmd.op_id = op.id;
    cmd.key = op.key;
    op.value = absl::StrCat("c", ci, "v", op.id);
    cmd.value = op.value;
    if (op.kind == OpKind::kCas) {
      cmd.kind = 'C';
      op.expected = last_written_[op.key];
      cmd.expected = op.expected;
    }
    if (!m.node->Propose(EncodeCommand(cmd)).ok()) {
      ++result_.failed_ops;  // refused before replication: certainly no effect
      continue;
    }
    last_written_[op.key] = op.value;
    history_.push_back(op);
    discarded_.push_back(false);
    c = Client{true, history_.size() - 1, target, now_ + kClientTimeoutMs};
    pending_writes_[op.id] = ci;
  }
}

void World::Timeouts() {
  for (Client& c : clients_) {
    if (!c.busy || now_ < c.deadline) continue;
    Operation& op = history_[c.op];
    if (op.kind == OpKind::kGet) {
      discarded_[c.op] = true;
      pending_reads_.erase(op.id);
    } else {
      op.unknown = true;
      pending_writes_.erase(op.id);
      ++result_.unknown_writes;
    }
    FinishOp(c);
  }
}

void World::StepOnce(bool faults) {
  ++now_;
  Faults();
  Deliver();
  for (Member& m : members_) {
    if (m.up && (now_ + m.id) % kTickMs == 0) {
      m.node->Tick();
      ObserveRole(m);
    }
  }
  Clients();
  LeaseClient();
  if (now_ % kTickMs == 0) ExpireLeases();
  PumpAll();
  Timeouts();
  for (Member& m : members_) {
    if (!m.up) continue;
    const bool r = m.node->status().hard_state.recovering;
    if (m.recovering && !r) {
      ++result_.recoveries_finished;
      Trace(absl::StrCat("n", m.id, " finished disk-loss recovery"));
    }
    m.recovering = r;
  }
}

bool World::Converged(std::string* why) {
  raft::NodeId lead = raft::kNoNode;
  for (Member& m : members_) {
    if (!m.up) {
      *why = absl::StrCat("n", m.id, " is down");
      return false;
    }
    const raft::Status st = m.node->status();
    if (st.soft_state.role == raft::Role::kLeader) lead = m.id;
  }
  if (lead == raft::kNoNode) {
    *why = "no leader";
    return false;
  }
  for (Member& m : members_) {
    const raft::Status rs = m.node->status();
    if (rs.hard_state.recovering) {
      *why =
          absl::StrCat("n", m.id, " is still recovering from disk loss (term ", rs.hard_state.term,
                       ", commit ", rs.hard_state.commit, ", log [", m.storage->FirstIndex(), ", ",
                       m.storage->LastIndex(), "], leader ", rs.soft_state.lead, ")");
      return false;
    }
  }
  const raft::Status ls = M(lead).node->status();
  for (Member& m : members_) {
    const raft::Status st = m.node->status();
    if (st.soft_state.lead != lead || m.node->applied() != ls.last_index ||
        m.node->writes_in_flight() != 0 || st.hard_state.commit != ls.last_index) {
      *why = absl::StrCat("n", m.id, " lead=", st.soft_state.lead, " applied=", m.node->applied(),
                          " commit=", st.hard_state.commit, " leader n", lead,
                          " last=", ls.last_index);
      return false;
    }
  }
  return true;
}

void World::FinalChecks() {
  // Log matching over whole logs: after convergence every pair agrees on their overlap.
  std::vector<const raft::LogStorage*> logs;
  for (const Member& m : members_) logs.push_back(m.storage.get());
  if (const std::string v = CheckLogsMatch(logs); !v.empty()) Fail(v);
  // Replicas end byte-identical.
  const std::string reference = members_[0].app->TakeSnapshot();
  for (int i = 1; i < n_; ++i) {
    if (members_[i].app->TakeSnapshot() != reference) {
      Fail(absl::StrCat("replicas differ: n1 and n", i + 1));
    }
  }
  // Durability: every acknowledged write is applied everywhere.
  std::vector<uint64_t> acknowledged;
  for (size_t i = 0; i < history_.size(); ++i) {
    const Operation& op = history_[i];
    if (!discarded_[i] && !op.unknown && op.kind != OpKind::kGet) acknowledged.push_back(op.id);
  }
  const std::string lost = CheckDurability(
      acknowledged, n_, [this](int m, uint64_t op) { return members_[m - 1].app->HasApplied(op); });
  if (!lost.empty()) Fail(lost);
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
}

SimResult World::Run() {
  try {
    for (Member& m : members_) Start(m);
    while (now_ < opt_.duration_ms) StepOnce(true);
    // Settle: heal everything, stop the load, and wait for every member to converge.
    settling_ = true;
    for (auto& row : blocked_) std::fill(row.begin(), row.end(), false);
    disk_faults_.fsync_failure = 0;
    const uint64_t settle_end = now_ + opt_.settle_ms;
    std::string why;
    bool converged = false;
    while (now_ < settle_end) {
      StepOnce(false);
      if (now_ % kTickMs == 0 && Converged(&why)) {
        converged = true;
        break;
      }
    }
    for (Client& c : clients_) {
      if (c.busy) {
        c.deadline = 0;
      }
    }
    Timeouts();
    if (!converged) Fail("liveness: no convergence after settling: " + why);
    FinalChecks();
  } catch (const SimViolation& v) {
    result_.ok = false;
    result_.failure = v.what();
  }
  return result_;
}

}  // namespace

Application ApplicationFor(const SimOptions& o) {
  if (o.application != Application::kAuto) return o.application;
  const BugSwitches& b = o.bugs;
  if (b.reply_before_batch_visible || b.reply_to_wrong_waiter || b.snapshot_forgets_leases ||
      b.compaction_resurrects || b.auth_not_rechecked) {
    return Application::kMember;
  }
  if (o.storage == StorageKind::kSimDisk || b.fsync_lies || b.read_without_read_index) {
    return Application::kRegister;
  }
  // Mixed, so that the choice is independent of the profile (seed mod 10).
  return MixSeed(o.seed, 0x6d656d) % 4 != 0 ? Application::kMember : Application::kRegister;
}

SimResult RunSimulation(const SimOptions& options) {
  if (ApplicationFor(options) == Application::kMember) return RunMemberSimulation(options);
  FatalHandler previous = SetFatalHandler(&ThrowViolation);
  SimResult result;
  {
    World world(options);
    result = world.Run();
  }
  SetFatalHandler(previous);
  return result;
}

}  // namespace chainfire::sim
