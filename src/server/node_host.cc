#include "chainfire/server/node_host.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "chainfire/common/check.h"
#include "chainfire/common/thread_name.h"
#include "chainfire/metrics/registry.h"
#include "spdlog/spdlog.h"

namespace chainfire::server {

namespace {
using Clock = std::chrono::steady_clock;
// etcd's threshold for "apply request took too long".
constexpr std::chrono::milliseconds kSlowApply{100};
}  // namespace

int64_t NodeHost::NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
      .count();
}

absl::StatusOr<std::unique_ptr<NodeHost>> NodeHost::Open(NodeHostOptions options,
                                                         storage::Engine* engine) {
  auto host = std::unique_ptr<NodeHost>(new NodeHost(std::move(options)));
  NodeHost* h = host.get();
  auto log = storage::RaftLogStore::Open(engine, [h] { h->Wake(); });
  if (!log.ok()) return log.status();
  host->log_ = std::move(*log);

  const NodeHostOptions& o = host->options_;
  member::MemberOptions mo;
  mo.name = o.name;
  mo.member_id = o.member_id;
  for (const MemberSpec& m : o.cluster.members) mo.voters.push_back(m.id);
  mo.client_urls = o.client_urls;
  mo.membership = MembershipHeader(o.cluster);
  mo.snapshot_dir = engine->dir() + "/snap";
  mo.heartbeat_ms = o.heartbeat_ms;
  mo.election_ticks = o.election_ticks;
  mo.request_timeout_ms = o.request_timeout_ms;
  mo.snapshot_count = o.snapshot_count;
  mo.snapshot_catchup_entries = o.snapshot_catchup_entries;
  mo.recovering = o.recovering;
  mo.auth_token_ttl_ms = o.auth_token_ttl_ms;
  mo.watch_progress_interval = o.watch_progress_interval;
  std::random_device rd;
  mo.seed = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^
            static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  auto m = member::Member::Open(std::move(mo), engine, host->log_.get(), &host->outbound_, NowMs());
  if (!m.ok()) return m.status();
  host->member_ = std::move(*m);
  return host;
}

NodeHost::~NodeHost() {
  Stop();
  member_.reset();
  log_.reset();  // joins the writer thread, whose callback wakes this host
}

bool NodeHost::HandOverLeadership(std::chrono::milliseconds timeout) {
  if (!is_leader() || options_.cluster.members.size() < 2) return true;
  const auto start = Clock::now();
  TransferLeadership(0);
  if (WaitForLeader([self = member_id()](uint64_t lead) { return lead != 0 && lead != self; },
                    timeout)) {
    spdlog::info(
        "member {:x}: handed leadership to {:x} in {} ms", member_id(), leader(),
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
    return true;
  }
  spdlog::warn("member {:x}: leadership hand-over did not finish within {} ms", member_id(),
               timeout.count());
  return false;
}

bool NodeHost::WaitForLeader(const std::function<bool(uint64_t)>& accept,
                             std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> l(leader_mu_);
  return leader_cv_.wait_for(l, timeout, [&] { return loop_done_ || accept(seen_leader_); }) &&
         accept(seen_leader_);
}

void NodeHost::Start(transport::PeerTransport* transport) {
  outbound_.target = transport;
  links_ = transport != nullptr ? transport->links() : nullptr;
  if (links_ != nullptr && !wait_.Watch(links_->fd())) {
    Fatal("the node thread cannot watch the peer links");
  }
  thread_ = std::thread([this] {
    SetThreadName("cf-node");
    Loop();
  });
}

void NodeHost::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  wait_.Notify();
  if (thread_.joinable()) thread_.join();
  readers_.Stop();
}

void NodeHost::Wake() {
  bool notify;
  {
    std::lock_guard<std::mutex> l(mu_);
    wake_ = true;
    notify = TakeSleeperLocked();
  }
  if (notify) wait_.Notify();
}

void NodeHost::Deliver(std::vector<raft::Message> messages) {
  bool notify;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return;
    for (raft::Message& m : messages) inbox_.push_back(std::move(m));
    notify = TakeSleeperLocked();
  }
  if (notify) wait_.Notify();
}

void NodeHost::Propose(internal::Request request, WriteDone user_done) {
  // Serialized here, on the caller's thread, to keep the node thread's work per write small.
  member::Member::Proposal p = member_->Prepare(std::move(request));
  proposals_pending_.fetch_add(1, std::memory_order_relaxed);
  WriteDone done = [this, user_done = std::move(user_done)](WriteResult r) {
    proposals_pending_.fetch_sub(1, std::memory_order_relaxed);
    if (!r.status.ok()) proposals_failed_.fetch_add(1, std::memory_order_relaxed);
    user_done(std::move(r));
  };
  bool queued = false;
  bool notify = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!stopping_) {
      proposals_.push_back(PendingWrite{std::move(p), std::move(done)});
      queued = true;
      notify = TakeSleeperLocked();
    }
  }
  if (queued) {
    if (notify) wait_.Notify();  // after unlocking: the node thread does not wake into a held lock
    return;
  }
  WriteResult r;
  r.status = ErrStopped();
  done(std::move(r));
}

namespace {

// ChainFire's own: from a linearizable read's arrival until it may be served (the ReadIndex
// round through the leader and the wait for the local apply).
metrics::Histogram* ReadIndexSeconds() {
  static metrics::Histogram* h =
      metrics::Default()
          .AddHistogram("chainfire_server_read_index_duration_seconds",
                        "Time from a linearizable read's arrival until it may be served.",
                        metrics::ExponentialBuckets(0.0001, 2, 16))
          ->Get();
  return h;
}

}  // namespace

void NodeHost::LinearizableRead(ReadDone done, ReadWork work) {
  if (metrics::TimingEnabled()) {
    done = [start = Clock::now(), timed = std::move(done)](absl::Status s) {
      if (s.ok()) {
        ReadIndexSeconds()->Observe(std::chrono::duration<double>(Clock::now() - start).count());
      }
      timed(std::move(s));
    };
  }
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
  bool queued = false;
  bool notify = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!stopping_) {
      reads_.push_back(std::move(done));
      queued = true;
      notify = TakeSleeperLocked();
    }
  }
  if (queued) {
    if (notify) wait_.Notify();
    return;
  }
  done(ErrStopped());
}

void NodeHost::SerializableRead(ReadDone done, ReadWork work) {
  if (work == ReadWork::kPoint) {
    done(absl::OkStatus());
    return;
  }
  readers_.Submit([scan = std::move(done)] { scan(absl::OkStatus()); });
}

void NodeHost::TransferLeadership(uint64_t target) {
  bool notify;
  {
    std::lock_guard<std::mutex> l(mu_);
    transfers_.push_back(target);
    notify = TakeSleeperLocked();
  }
  if (notify) wait_.Notify();
}

void NodeHost::Loop() {
  const auto tick = std::chrono::milliseconds(options_.heartbeat_ms);
  auto next_tick = Clock::now() + tick;
  Clock::time_point last_slow_apply_log{};
  for (;;) {
    std::vector<raft::Message> inbox;
    std::vector<PendingWrite> proposals;
    std::vector<ReadDone> reads;
    std::vector<uint64_t> transfers;
    bool idle;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stopping_) break;
      idle = !wake_ && inbox_.empty() && proposals_.empty() && reads_.empty() && transfers_.empty();
      sleeping_ = idle;
    }
    if (idle) {
      const auto left = next_tick - Clock::now();
      const int64_t wait_ms =
          std::max<int64_t>(0, std::chrono::ceil<std::chrono::milliseconds>(left).count());
      wait_.Wait(static_cast<int>(wait_ms));  // ends early for a request or a link's bytes
    }
    // Messages that came on the links go first, as the node thread reads them itself.
    if (links_ != nullptr) links_->Poll(&inbox);
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stopping_) break;
      sleeping_ = false;
      wake_ = false;
      if (inbox.empty()) {
        inbox.swap(inbox_);
      } else {
        for (raft::Message& m : inbox_) inbox.push_back(std::move(m));
        inbox_.clear();
      }
      proposals.swap(proposals_);
      reads.swap(reads_);
      transfers.swap(transfers_);
    }
    member_->SetTime(NowMs());
    for (raft::Message& m : inbox) member_->Step(std::move(m));
    if (!proposals.empty()) {
      // One Raft proposal for all of them: one append, one message per follower.
      std::vector<std::pair<member::Member::Proposal, WriteDone>> batch;
      batch.reserve(proposals.size());
      for (PendingWrite& p : proposals)
        batch.emplace_back(std::move(p.proposal), std::move(p.done));
      member_->ProposeBatch(std::move(batch));
    }
    for (ReadDone& done : reads) member_->Read(std::move(done));
    for (uint64_t target : transfers) member_->TransferLeadership(target);
    if (Clock::now() >= next_tick) {
      member_->Tick();
      next_tick += tick;
      if (next_tick < Clock::now()) next_tick = Clock::now() + tick;
    }
    const auto pump_start = Clock::now();
    member_->Pump();
    if (const auto took = Clock::now() - pump_start; took > kSlowApply) {
      // etcd's "apply request took too long": committed entries applied in one round.
      slow_applies_.fetch_add(1, std::memory_order_relaxed);
      if (Clock::now() - last_slow_apply_log >= std::chrono::seconds(1)) {
        last_slow_apply_log = Clock::now();
        spdlog::warn("member {:x}: applying took too long: {} ms, expected at most {} ms",
                     member_id(),
                     std::chrono::duration_cast<std::chrono::milliseconds>(took).count(),
                     kSlowApply.count());
      }
    }
    if (const uint64_t lead = member_->leader(); lead != seen_leader_unlocked_) {
      // As etcd counts them: each change to a (new) leader; losing one is not a change.
      if (lead != 0) leader_changes_.fetch_add(1, std::memory_order_relaxed);
      seen_leader_unlocked_ = lead;
      {
        std::lock_guard<std::mutex> l(leader_mu_);
        seen_leader_ = lead;
      }
      leader_cv_.notify_all();
    }
    if (member_->stopped()) {
      // A failed fsync: never continue as if the write were durable.
      Fatal(absl::StrCat("stopping: ", member_->stop_reason().ToString()));
    }
  }
  {
    std::lock_guard<std::mutex> l(leader_mu_);
    loop_done_ = true;
  }
  leader_cv_.notify_all();
  // Fail whatever is still waiting.
  member_->FailPending();
  std::vector<PendingWrite> proposals;
  std::vector<ReadDone> reads;
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
  for (ReadDone& done : reads) done(ErrStopped());
}

std::shared_ptr<grpc::Channel> NodeHost::LeaderChannel() const {
  const uint64_t lead = leader();
  transport::PeerTransport* transport = outbound_.target.load();
  if (lead == 0 || transport == nullptr) return nullptr;
  return transport->ChannelTo(lead);
}

std::vector<etcdserverpb::Member> NodeHost::Members() const {
  std::vector<etcdserverpb::Member> out;
  const std::map<uint64_t, std::string> attributes = member_->Attributes();
  for (const MemberSpec& m : options_.cluster.members) {
    etcdserverpb::Member pm;
    pm.set_id(m.id);
    for (const std::string& u : m.peer_urls) pm.add_peerurls(u);
    auto it = attributes.find(m.id);
    if (it != attributes.end()) {
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

}  // namespace chainfire::server
