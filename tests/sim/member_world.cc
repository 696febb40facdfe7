// The member simulation's world: N real member::Members (see member_world.h), the network,
// faults, the step loop, and the checks at the end; the clients are in member_clients.cc.
#include "member_world.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "chainfire/common/check.h"
#include "rocksdb/env.h"
#include "spdlog/spdlog.h"

namespace chainfire::sim {
namespace member_sim {

namespace {
[[noreturn]] void ThrowViolation(const std::string& what) { throw Violation(what); }
}  // namespace

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
  mo.bugs.auth_not_rechecked = opt_.bugs.auth_not_rechecked;
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
  WatchEverything(n);
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
  const std::string v = checker_.OnDurableEntries(n.id, r.entries, *n.storage);
  if (!v.empty()) Fail(v);
}

void MemberWorld::OnApplied(Node& n, const raft::Entry& e, const internal::Request& req,
                            const member::WriteResult& r) {
  if (const std::string v = checker_.OnApplied(n.id, e); !v.empty()) Fail(v);
  CheckAuthApplied(n, e, req, r);
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
  Auth();
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
  std::vector<const raft::LogStorage*> logs;
  for (const Node& n : nodes_) logs.push_back(n.storage.get());
  if (const std::string v = CheckLogsMatch(logs); !v.empty()) Fail(v);
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

}  // namespace member_sim

SimResult RunMemberSimulation(const SimOptions& options) {
  using member_sim::MemberWorld;
  using member_sim::ThrowViolation;
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