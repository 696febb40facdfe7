#include "chainfire/server/node_host.h"

#include <filesystem>
#include <random>

#include "absl/strings/str_cat.h"
#include "chainfire/backup/state_dump.h"
#include "chainfire/common/check.h"
#include "spdlog/spdlog.h"

namespace chainfire::server {

absl::Status ErrNoLeader() { return absl::UnavailableError("etcdserver: no leader"); }
absl::Status ErrLeaderChanged() { return absl::UnavailableError("etcdserver: leader changed"); }
absl::Status ErrTimeout() { return absl::UnavailableError("etcdserver: request timed out"); }
absl::Status ErrStopped() { return absl::UnavailableError("etcdserver: server stopped"); }

namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

absl::StatusOr<std::unique_ptr<NodeHost>> NodeHost::Open(NodeHostOptions options,
                                                         storage::Engine* engine) {
  auto host = std::unique_ptr<NodeHost>(new NodeHost(std::move(options)));
  host->engine_ = engine;
  NodeHost* h = host.get();
  auto log = storage::RaftLogStore::Open(engine, [h] { h->Wake(); });
  if (!log.ok()) return log.status();
  host->log_ = std::move(*log);
  auto kv = mvcc::KvStore::Open(engine);
  if (!kv.ok()) return kv.status();
  host->kv_ = std::move(*kv);
  host->hub_ =
      std::make_unique<mvcc::WatchHub>(host->kv_.get(), host->options_.watch_progress_interval);
  const raft::HardState hs = host->log_->InitialHardState();
  if (host->kv_->applied_index() > hs.commit) {
    return absl::DataLossError(absl::StrCat("applied index ", host->kv_->applied_index(),
                                            " is beyond the commit index ", hs.commit,
                                            "; refusing to start"));
  }
  for (auto& [id, blob] : host->kv_->LoadMemberAttributes()) host->attributes_[id] = blob;
  for (const auto& [id, ttl] : host->kv_->Leases()) host->lessor_.Grant(id, ttl * 1000, NowMs());

  raft::Config cfg;
  cfg.id = host->options_.member_id;
  for (const MemberSpec& m : host->options_.cluster.members) cfg.voters.push_back(m.id);
  cfg.election_tick = host->options_.election_ticks;
  cfg.heartbeat_tick = 1;
  cfg.applied = host->kv_->applied_index();
  cfg.max_size_per_msg = 4 << 20;
  cfg.max_inflight_msgs = 256;
  cfg.recovering = host->options_.recovering;
  std::random_device rd;
  cfg.seed = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^
             static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  host->next_id_ = cfg.seed << 20;  // request ids: unique across restarts
  {
    // Received snapshot files not installed yet (a crash between receipt and install) and
    // files being sent are useless now; the one a durable snapshot record names is kept (an
    // install interrupted by a crash is redone from it below).
    auto snap = host->log_->GetSnapshot();
    host->CleanSnapshotDir(snap.ok() ? snap->data : std::string());
  }
  node::NodeOptions nopt;
  nopt.snapshot_every = host->options_.snapshot_count;
  nopt.compaction_margin = host->options_.snapshot_catchup_entries;
  nopt.read_timeout_ticks = host->options_.election_ticks * 2;
  auto node = node::RaftNode::Create(cfg, nopt, host->log_.get(), &host->outbound_, host.get());
  if (!node.ok()) return node.status();
  host->node_ = std::move(*node);
  host->first_index_ = host->log_->FirstIndex();
  host->recovering_ = host->node_->status().hard_state.recovering || host->options_.recovering;
  return host;
}

NodeHost::~NodeHost() { Stop(); }

bool NodeHost::bootstrapped() const { return log_->LastIndex() > 0 || kv_->applied_index() > 0; }

bool NodeHost::HandOverLeadership(std::chrono::milliseconds timeout) {
  if (!is_leader() || options_.cluster.members.size() < 2) return true;
  const auto start = Clock::now();
  TransferLeadership(0);
  while (Clock::now() - start < timeout) {
    const uint64_t lead = leader();
    if (lead != 0 && lead != member_id()) {
      spdlog::info(
          "member {:x}: handed leadership to {:x} in {} ms", member_id(), lead,
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  spdlog::warn("member {:x}: leadership hand-over did not finish within {} ms", member_id(),
               timeout.count());
  return false;
}

void NodeHost::Start(transport::PeerTransport* transport) {
  started_ = Clock::now();
  replay_from_ = kv_->applied_index();
  replay_target_ = std::max<uint64_t>(log_->InitialHardState().commit, replay_from_);
  spdlog::info("member {:x}: starting at applied index {}, commit index {}, log [{}, {}]",
               options_.member_id, replay_from_, replay_target_, log_->FirstIndex(),
               log_->LastIndex());
  transport_ = transport;
  outbound_.target = transport;
  thread_ = std::thread([this] { Loop(); });
}

void NodeHost::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  readers_.Stop();
}

void NodeHost::Wake() {
  {
    std::lock_guard<std::mutex> l(mu_);
    wake_ = true;
  }
  cv_.notify_one();
}

void NodeHost::Deliver(std::vector<raft::Message> messages) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return;
    for (raft::Message& m : messages) inbox_.push_back(std::move(m));
  }
  cv_.notify_one();
}

void NodeHost::Propose(internal::Request request, WriteDone done) {
  const uint64_t id = next_id_.fetch_add(1);
  request.set_proposer(options_.member_id);
  request.set_id(id);
  std::string data = request.SerializeAsString();
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) {
      WriteResult r;
      r.status = ErrStopped();
      done(std::move(r));
      return;
    }
    proposals_.push_back(PendingWrite{id, std::move(data), std::move(done)});
  }
  cv_.notify_one();
}

void NodeHost::LinearizableRead(ReadDone done, ReadWork work) {
  if (work == ReadWork::kScan) {
    // Once the store has applied the read index any later state is as good, so the scan may
    // run later, on another thread.
    done = [this, scan = std::move(done)](absl::Status s) {
      if (!s.ok()) {
        scan(s);
        return;
      }
      readers_.Submit([scan] { scan(absl::OkStatus()); });
    };
  }
  const uint64_t id = next_id_.fetch_add(1);
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) {
      done(ErrStopped());
      return;
    }
    reads_.emplace_back(id, std::move(done));
  }
  cv_.notify_one();
}

void NodeHost::TransferLeadership(uint64_t target) {
  {
    std::lock_guard<std::mutex> l(mu_);
    transfers_.push_back(target);
  }
  cv_.notify_one();
}

void NodeHost::Loop() {
  const auto tick = std::chrono::milliseconds(options_.heartbeat_ms);
  auto next_tick = Clock::now() + tick;
  for (;;) {
    std::vector<raft::Message> inbox;
    std::vector<PendingWrite> proposals;
    std::vector<std::pair<uint64_t, ReadDone>> reads;
    std::vector<uint64_t> transfers;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait_until(l, next_tick, [&] {
        return stopping_ || wake_ || !inbox_.empty() || !proposals_.empty() || !reads_.empty() ||
               !transfers_.empty();
      });
      if (stopping_) break;
      wake_ = false;
      inbox.swap(inbox_);
      proposals.swap(proposals_);
      reads.swap(reads_);
      transfers.swap(transfers_);
    }
    for (raft::Message& m : inbox) (void)node_->Step(std::move(m));
    for (PendingWrite& p : proposals) {
      absl::Status s = node_->Propose(std::move(p.data));
      if (!s.ok()) {
        WriteResult r;
        r.status = ErrNoLeader();
        p.done(std::move(r));
        continue;
      }
      waiters_[p.id] = Waiter{
          std::move(p.done), Clock::now() + std::chrono::milliseconds(options_.request_timeout_ms)};
    }
    for (auto& [id, done] : reads) {
      read_waiters_[id] = ReadWaiter{
          std::move(done), Clock::now() + std::chrono::milliseconds(options_.request_timeout_ms)};
      node_->Read(id);
    }
    for (uint64_t target : transfers) {
      if (target == 0) {
        // The follower with the longest log: it can take over at once.
        raft::Index best = 0;
        for (const auto& [id, fs] : node_->status().progress) {
          if (id != options_.member_id && fs.match >= best) {
            best = fs.match;
            target = id;
          }
        }
      }
      if (target != 0) node_->TransferLeader(target);
    }
    if (Clock::now() >= next_tick) {
      node_->Tick();
      next_tick += tick;
      if (next_tick < Clock::now()) next_tick = Clock::now() + tick;
      ExpireRequests();
      MaybePublish();
      ExpireLeases();
    }
    for (int i = 0; i < 100000 && node_->PumpOnce(); ++i) {
    }
    if (node_->stopped()) {
      // A failed fsync: never continue as if the write were durable.
      Fatal(absl::StrCat("stopping: ", node_->stop_reason().ToString()));
    }
    const raft::Status st = node_->status();
    term_ = st.hard_state.term;
    commit_ = st.hard_state.commit;
    first_index_ = log_->FirstIndex();
    if (!replay_logged_ && kv_->applied_index() >= replay_target_) {
      replay_logged_ = true;
      spdlog::info(
          "member {:x}: replayed {} committed entries (applied index {} -> {}) in {} ms",
          options_.member_id, replay_target_ - std::min(replay_target_, replay_from_), replay_from_,
          kv_->applied_index(),
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_).count());
    }
    if (recovering_ && !st.hard_state.recovering) {
      recovering_ = false;
      spdlog::info("member {:x}: finished disk-loss recovery at commit index {} (term {})",
                   options_.member_id, st.hard_state.commit, st.hard_state.term);
    }
  }
  // Fail whatever is still waiting.
  for (auto& [id, w] : waiters_) {
    WriteResult r;
    r.status = ErrStopped();
    w.done(std::move(r));
  }
  waiters_.clear();
  for (auto& [id, w] : read_waiters_) w.done(ErrStopped());
  read_waiters_.clear();
  std::vector<PendingWrite> proposals;
  std::vector<std::pair<uint64_t, ReadDone>> reads;
  {
    std::lock_guard<std::mutex> l(mu_);
    proposals.swap(proposals_);
    reads.swap(reads_);
  }
  for (PendingWrite& p : proposals) {
    WriteResult r;
    r.status = ErrStopped();
    p.done(std::move(r));
  }
  for (auto& [id, done] : reads) done(ErrStopped());
}

void NodeHost::ExpireRequests() {
  const auto now = Clock::now();
  // Without a leader for a whole election timeout, pending writes fail now rather than at
  // their deadline. Their outcome is unknown to the client (one may still commit later), as
  // with any error after a proposal.
  const auto election = std::chrono::milliseconds(options_.heartbeat_ms * options_.election_ticks);
  if (leader_ == 0 && now - leaderless_since_ >= election) {
    for (auto& [id, w] : waiters_) {
      WriteResult r;
      r.status = ErrNoLeader();
      w.done(std::move(r));
    }
    waiters_.clear();
  }
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if (it->second.leader_change_deadline && *it->second.leader_change_deadline <= now) {
      WriteResult r;
      r.status = ErrLeaderChanged();
      it->second.done(std::move(r));
      it = waiters_.erase(it);
    } else if (it->second.deadline <= now) {
      WriteResult r;
      r.status = ErrTimeout();
      it->second.done(std::move(r));
      it = waiters_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = read_waiters_.begin(); it != read_waiters_.end();) {
    if (it->second.deadline <= now) {
      it->second.done(ErrTimeout());
      it = read_waiters_.erase(it);
    } else {
      ++it;
    }
  }
}

int64_t NodeHost::NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
      .count();
}

void NodeHost::ExpireLeases() {
  if (!is_leader()) return;
  for (int64_t id : lessor_.TakeExpired(NowMs())) {
    internal::Request req;
    req.mutable_lease_revoke()->set_id(id);
    const uint64_t rid = next_id_.fetch_add(1);
    req.set_proposer(options_.member_id);
    req.set_id(rid);
    if (!node_->Propose(req.SerializeAsString()).ok()) {
      lessor_.RevokeFailed(id);
      continue;
    }
    waiters_[rid] = Waiter{[this, id](WriteResult r) {
                             if (!r.status.ok()) lessor_.RevokeFailed(id);
                           },
                           Clock::now() + std::chrono::milliseconds(options_.request_timeout_ms)};
  }
}

etcdserverpb::LeaseKeepAliveResponse NodeHost::KeepAliveLocal(int64_t id) {
  etcdserverpb::LeaseKeepAliveResponse resp;
  resp.set_id(id);
  resp.set_ttl(lessor_.Renew(id, NowMs()) / 1000);
  FillHeader(resp.mutable_header());
  return resp;
}

etcdserverpb::LeaseTimeToLiveResponse NodeHost::TimeToLiveLocal(
    const etcdserverpb::LeaseTimeToLiveRequest& req) {
  etcdserverpb::LeaseTimeToLiveResponse resp;
  resp.set_id(req.id());
  resp.set_ttl(-1);
  if (auto r = lessor_.Remaining(req.id(), NowMs())) {
    resp.set_ttl((r->first + 999) / 1000);
    resp.set_grantedttl(r->second / 1000);
    if (req.keys()) {
      for (const std::string& k : kv_->LeaseKeys(req.id())) resp.add_keys(k);
    }
  }
  FillHeader(resp.mutable_header());
  return resp;
}

int64_t NodeHost::min_lease_ttl() const {
  const int64_t ms = (3 * options_.election_ticks / 2) * options_.heartbeat_ms;
  return std::max<int64_t>(1, (ms + 999) / 1000);
}

std::string NodeHost::LeaderPeerAddress() const {
  const MemberSpec* m = options_.cluster.FindId(leader());
  return m == nullptr ? std::string() : m->DialAddress();
}

void NodeHost::MaybePublish() {
  if (published_ || publish_pending_ || leader_ == 0 || Clock::now() < next_publish_) return;
  internal::Request req;
  internal::PublishMember* p = req.mutable_publish();
  p->set_member_id(options_.member_id);
  p->set_name(options_.name);
  for (const std::string& u : options_.client_urls) p->add_client_urls(u);
  const uint64_t id = next_id_.fetch_add(1);
  req.set_proposer(options_.member_id);
  req.set_id(id);
  if (!node_->Propose(req.SerializeAsString()).ok()) return;
  publish_pending_ = true;
  waiters_[id] = Waiter{[this](WriteResult r) {
                          publish_pending_ = false;
                          if (r.status.ok()) {
                            published_ = true;
                          } else {
                            next_publish_ = Clock::now() + std::chrono::seconds(1);
                          }
                        },
                        Clock::now() + std::chrono::milliseconds(options_.request_timeout_ms)};
}

void NodeHost::Apply(const raft::Entry& entry) {
  // An installed snapshot may hold the state past its own index (the sender's applied index
  // when it wrote the file): those entries are in the store already.
  if (entry.index <= kv_->applied_index()) return;
  if (!batch_open_) {
    kv_->BeginBatch();
    batch_open_ = true;
  }
  if (entry.data.empty()) {
    kv_->MarkApplied(entry.index);  // a leader's no-op
    return;
  }
  internal::Request req;
  CF_CHECK(req.ParseFromString(entry.data)) << "undecodable log entry " << entry.index;
  WriteResult result;
  switch (req.op_case()) {
    case internal::Request::kPut:
      result.status = kv_->ApplyPut(entry.index, req.put(), &result.put);
      break;
    case internal::Request::kDeleteRange:
      result.status = kv_->ApplyDeleteRange(entry.index, req.delete_range(), &result.delete_range);
      break;
    case internal::Request::kCompaction:
      result.status =
          kv_->ApplyCompact(entry.index, req.compaction().revision(), &result.compaction);
      break;
    case internal::Request::kLeaseGrant: {
      result.status = kv_->ApplyLeaseGrant(entry.index, req.lease_grant().id(),
                                           req.lease_grant().ttl(), &result.lease_grant);
      if (result.status.ok()) {
        lessor_.Grant(req.lease_grant().id(), req.lease_grant().ttl() * 1000, NowMs());
      }
      break;
    }
    case internal::Request::kLeaseRevoke: {
      result.status =
          kv_->ApplyLeaseRevoke(entry.index, req.lease_revoke().id(), &result.lease_revoke);
      lessor_.Revoke(req.lease_revoke().id());
      break;
    }
    case internal::Request::kAlarm:
      kv_->ApplyAlarm(entry.index, req.alarm(), &result.alarm);
      break;
    case internal::Request::kTxn:
      result.status = kv_->ApplyTxn(entry.index, req.txn(), &result.txn);
      break;
    case internal::Request::kPublish: {
      const std::string blob = req.publish().SerializeAsString();
      kv_->ApplyMemberAttributes(entry.index, req.publish().member_id(), blob);
      std::lock_guard<std::mutex> l(mu_);
      attributes_[req.publish().member_id()] = blob;
      break;
    }
    default:
      kv_->MarkApplied(entry.index);
      break;
  }
  if (req.proposer() != options_.member_id) return;
  auto it = waiters_.find(req.id());
  if (it == waiters_.end()) return;
  // Answered once the batch is visible (OnAppliedBatch), never before.
  applied_replies_.emplace_back(std::move(it->second.done), std::move(result));
  waiters_.erase(it);
}

void NodeHost::OnAppliedBatch() {
  if (!batch_open_) return;
  kv_->CommitBatch();
  batch_open_ = false;
  std::vector<std::pair<WriteDone, WriteResult>> replies;
  replies.swap(applied_replies_);
  for (auto& [done, result] : replies) done(std::move(result));
}

void NodeHost::RestoreSnapshot(const raft::Snapshot& snapshot) {
  if (kv_->applied_index() >= snapshot.meta.index && snapshot.data.empty()) return;
  if (snapshot.data.empty()) {
    Fatal(absl::StrCat("the log was truncated at index ", snapshot.meta.index,
                       " but the store has applied only ", kv_->applied_index(),
                       "; the data dir is inconsistent. Restore this member from a backup."));
  }
  const std::string& path = snapshot.data;
  if (!std::filesystem::exists(path)) {
    Fatal(absl::StrCat("the snapshot file ", path, " for index ", snapshot.meta.index,
                       " is missing; restore this member from a backup"));
  }
  const auto start = Clock::now();
  absl::Status s = kv_->ReplaceState([&] { return backup::InstallRawState(engine_, path); });
  if (!s.ok()) {
    Fatal(absl::StrCat("installing the snapshot ", path, " failed: ", s.ToString()));
  }
  ReloadAfterInstall();
  // The install is durable (its last batch was synced): no redo will need the file.
  CleanSnapshotDir(std::string());
  snapshots_installed_.fetch_add(1);
  spdlog::info(
      "member {:x}: installed the snapshot at index {} (state applied through {}, "
      "revision {}) in {} ms",
      options_.member_id, snapshot.meta.index, kv_->applied_index(), kv_->revision(),
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
}

void NodeHost::ReloadAfterInstall() {
  {
    std::lock_guard<std::mutex> l(mu_);
    attributes_.clear();
    for (auto& [id, blob] : kv_->LoadMemberAttributes()) attributes_[id] = blob;
  }
  lessor_.Clear();
  for (const auto& [id, ttl] : kv_->Leases()) lessor_.Grant(id, ttl * 1000, NowMs());
  hub_->Resync(kv_->revision());
}

std::string NodeHost::snapshot_dir() const { return engine_->dir() + "/snap"; }

void NodeHost::CleanSnapshotDir(const std::string& keep) {
  std::error_code ec;
  const bool running = thread_.joinable();
  for (const auto& entry : std::filesystem::directory_iterator(snapshot_dir(), ec)) {
    if (entry.path().string() == keep) continue;
    // While running, files being sent ("out-") and received (".part") belong to the transport.
    const std::string name = entry.path().filename().string();
    if (running && (name.rfind("out-", 0) == 0 || entry.path().extension() == ".part")) continue;
    std::filesystem::remove(entry.path(), ec);
  }
}

absl::StatusOr<std::string> NodeHost::WriteSnapshotForPeer(const raft::Message& m) {
  std::error_code ec;
  std::filesystem::create_directories(snapshot_dir(), ec);
  const std::string path = absl::StrCat(snapshot_dir(), "/out-", absl::Hex(m.to), "-",
                                        snapshot_files_.fetch_add(1), ".snap");
  const rocksdb::Snapshot* snap = engine_->db()->GetSnapshot();
  backup::BackupHeader header = MembershipHeader(options_.cluster);
  auto summary = backup::WriteBackupFile(path, [&](backup::BackupWriter* w) {
    return backup::WriteRawState(engine_, snap, header, w);
  });
  engine_->db()->ReleaseSnapshot(snap);
  if (!summary.ok()) return summary.status();
  spdlog::info("member {:x}: wrote a snapshot for {:x} (raft index {}, {} records, {} bytes)",
               options_.member_id, m.to, m.snapshot ? m.snapshot->meta.index : 0,
               summary->trailer.raw_records(), summary->size);
  return path;
}

absl::Status NodeHost::VerifyReceivedSnapshot(const std::string& path) {
  auto summary = backup::VerifyFile(path);
  if (!summary.ok()) return summary.status();
  if (summary->header.kind() != backup::kKindRaftSnapshot) {
    return absl::InvalidArgumentError("not a raft snapshot");
  }
  return absl::OkStatus();
}

std::string NodeHost::TakeSnapshot() {
  // The state lives in RocksDB at the applied index; the snapshot record only marks the point
  // (a follower that needs the state gets it streamed by WriteSnapshotForPeer).
  return std::string();
}

void NodeHost::OnReadReady(uint64_t read_id) {
  auto it = read_waiters_.find(read_id);
  if (it == read_waiters_.end()) return;
  ReadDone done = std::move(it->second.done);
  read_waiters_.erase(it);
  done(absl::OkStatus());
}

void NodeHost::OnReadFailed(uint64_t read_id) {
  auto it = read_waiters_.find(read_id);
  if (it == read_waiters_.end()) return;
  ReadDone done = std::move(it->second.done);
  read_waiters_.erase(it);
  done(leader_ == 0 ? ErrNoLeader() : ErrLeaderChanged());
}

void NodeHost::OnSoftStateChange(const raft::SoftState& state) {
  if (state.lead == 0 && leader_ != 0) leaderless_since_ = Clock::now();
  if (state.lead == options_.member_id && leader_ != options_.member_id) {
    // A new leader does not know when its predecessor last renewed each lease: give every
    // lease its full TTL plus an election timeout, so none expires early (as etcd 3.4).
    lessor_.Promote(NowMs(), options_.heartbeat_ms * options_.election_ticks);
  }
  if (leader_ != 0 && state.lead != leader_) {
    // A new leader commits what the old one replicated within about an election timeout;
    // writes still waiting after that fail with "leader changed" (their outcome is unknown).
    const auto grace =
        Clock::now() + std::chrono::milliseconds(options_.heartbeat_ms * options_.election_ticks);
    for (auto& [id, w] : waiters_) {
      if (!w.leader_change_deadline) w.leader_change_deadline = grace;
    }
  }
  if (state.lead != leader_) {
    spdlog::info("member {:x}: leader is now {:x} ({})", options_.member_id, state.lead,
                 raft::RoleName(state.role));
  }
  leader_ = state.lead;
}

std::vector<etcdserverpb::Member> NodeHost::Members() const {
  std::vector<etcdserverpb::Member> out;
  std::lock_guard<std::mutex> l(mu_);
  for (const MemberSpec& m : options_.cluster.members) {
    etcdserverpb::Member pm;
    pm.set_id(m.id);
    for (const std::string& u : m.peer_urls) pm.add_peerurls(u);
    auto it = attributes_.find(m.id);
    if (it != attributes_.end()) {
      internal::PublishMember p;
      if (p.ParseFromString(it->second)) {
        pm.set_name(p.name());
        for (const std::string& u : p.client_urls()) pm.add_clienturls(u);
      }
    }
    out.push_back(std::move(pm));
  }
  return out;
}

void NodeHost::FillHeader(etcdserverpb::ResponseHeader* header) const {
  header->set_cluster_id(options_.cluster.cluster_id);
  header->set_member_id(options_.member_id);
  header->set_raft_term(term_.load());
  if (header->revision() == 0) header->set_revision(kv_->revision());
}

}  // namespace chainfire::server
