// NodeHost: the thread shell around one member::Member. It opens the member's durable Raft log
// (RaftLogStore, with its group-commit writer thread), owns the node thread and its inbox, feeds
// the Member the clock, peer messages, proposals, reads and ticks, and hands the etcd services
// what they need. With the transport's peer links the node thread also reads and writes them
// itself (it sleeps in one epoll wait for both). Everything that decides (apply, reply matching,
// leases, snapshots, hand-over target) is in the Member, which the simulation runs without this
// shell.
//
// Clients hand it proposals and linearizable reads from any thread; completions run on the
// node thread and must not block (they finish a gRPC reactor), except linearizable scans,
// which run on one of the host's two reader threads.
// Thread-safety: public methods are thread-safe unless noted.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "chainfire/common/event_wait.h"
#include "chainfire/common/worker_pool.h"
#include "chainfire/member/member.h"
#include "chainfire/server/cluster_config.h"
#include "chainfire/storage/raft_log_store.h"
#include "chainfire/transport/peer_transport.h"

namespace chainfire::server {

using member::ErrLeaderChanged;
using member::ErrNoLeader;
using member::ErrStopped;
using member::ErrTimeout;
using member::WriteResult;

struct NodeHostOptions {
  std::string name;
  uint64_t member_id = 0;
  ClusterSpec cluster;
  std::vector<std::string> client_urls;  // advertised, published through the log
  int heartbeat_ms = 100;
  int election_ticks = 10;  // election timeout in heartbeats
  int request_timeout_ms = 7000;
  std::chrono::milliseconds watch_progress_interval{std::chrono::minutes(10)};
  // See member::MemberOptions.
  uint64_t snapshot_count = 100000;
  uint64_t snapshot_catchup_entries = 5000;
  bool recovering = false;
  int64_t auth_token_ttl_ms = 300000;  // --auth-token-ttl
};

class NodeHost {
 public:
  using WriteDone = member::Member::WriteDone;
  using ReadDone = member::Member::ReadDone;

  // Opens the raft log and the member on `engine` (which must outlive the host).
  static absl::StatusOr<std::unique_ptr<NodeHost>> Open(NodeHostOptions options,
                                                        storage::Engine* engine);
  ~NodeHost();

  // Starts the node thread; `transport` must outlive the host.
  void Start(transport::PeerTransport* transport);
  // Fails pending requests, stops the thread. Idempotent.
  void Stop();

  // Messages from peers (the transport's delivery callback).
  void Deliver(std::vector<raft::Message> messages);
  // Proposes a write; `done` runs once, on the node thread (or at once on failure).
  void Propose(internal::Request request, WriteDone done);
  // How much a read does once it may run: one key (a seek), or a scan of any length.
  enum class ReadWork { kPoint, kScan };
  // Confirms leadership and waits until the local store has applied everything committed
  // before the call; then `done(OK)` runs and a local read is linearizable. A point read runs
  // on the node thread (cheaper than a hand-off); a scan runs on one of the host's reader
  // threads, as a long scan on the node thread would hold up heartbeats and elect another
  // leader. A failure runs `done` with etcd's error on the node thread (or at once when
  // stopping).
  void LinearizableRead(ReadDone done, ReadWork work = ReadWork::kScan);
  // A serializable read: a point read runs `done(OK)` at once, on the calling thread; a scan on
  // one of the reader threads, as a long scan on a gRPC callback thread would hold up every
  // call of the process behind it (grpc_callback_threads.h).
  void SerializableRead(ReadDone done, ReadWork work);
  // Asks the leader to hand leadership to `target` (0: the follower with the longest log).
  void TransferLeadership(uint64_t target);
  // Graceful shutdown of a leader: hands leadership to the most up-to-date follower and waits
  // up to `timeout` for another member to lead. Returns whether it did (true at once when this
  // member is not the leader or is alone).
  bool HandOverLeadership(std::chrono::milliseconds timeout);
  // Blocks until `accept(leader)` holds for the leader the node thread last saw (0: none), or
  // until `timeout`; returns whether it held. Woken by leader changes, never polls. Must not be
  // called on the node thread or a gRPC callback thread.
  bool WaitForLeader(const std::function<bool(uint64_t)>& accept,
                     std::chrono::milliseconds timeout);

  absl::StatusOr<std::string> WriteSnapshotForPeer(const raft::Message& m) {
    return member_->WriteSnapshotForPeer(m);
  }
  static absl::Status VerifyReceivedSnapshot(const std::string& path) {
    return member::Member::VerifyReceivedSnapshot(path);
  }
  std::string snapshot_dir() const { return member_->snapshot_dir(); }
  uint64_t first_log_index() const { return member_->first_log_index(); }
  uint64_t snapshots_installed() const { return member_->snapshots_installed(); }

  // Leases (leader only; see member::Member).
  etcdserverpb::LeaseKeepAliveResponse KeepAliveLocal(int64_t id) {
    return member_->KeepAlive(id, NowMs());
  }
  etcdserverpb::LeaseTimeToLiveResponse TimeToLiveLocal(
      const etcdserverpb::LeaseTimeToLiveRequest& req) {
    return member_->TimeToLive(req, NowMs());
  }
  int64_t min_lease_ttl() const { return member_->min_lease_ttl(); }
  bool is_leader() const { return member_->is_leader(); }
  // The peer channel to the leader (the transport's), or nullptr when there is no leader, this
  // member leads, or the host was not started.
  std::shared_ptr<grpc::Channel> LeaderChannel() const;

  mvcc::KvStore& kv() { return member_->kv(); }
  // The replicated auth store and this member's simple tokens (see member::Member).
  const auth::AuthStore& auth() const { return member_->auth(); }
  auth::SimpleTokens& tokens() { return member_->tokens(); }
  mvcc::WatchHub& watch_hub() { return member_->watch_hub(); }
  uint64_t member_id() const { return options_.member_id; }
  uint64_t cluster_id() const { return options_.cluster.cluster_id; }
  const ClusterSpec& cluster_spec() const { return options_.cluster; }
  uint64_t leader() const { return member_->leader(); }
  uint64_t term() const { return member_->term(); }
  uint64_t commit_index() const { return member_->commit_index(); }
  uint64_t applied_index() const { return member_->applied_index(); }
  bool bootstrapped() const { return member_->bootstrapped(); }
  // For the metrics (etcd_server_*): changes to a new leader seen, proposals waiting for their
  // outcome, proposals that failed. Any thread.
  uint64_t leader_changes() const { return leader_changes_.load(std::memory_order_relaxed); }
  int64_t proposals_pending() const { return proposals_pending_.load(std::memory_order_relaxed); }
  uint64_t proposals_failed() const { return proposals_failed_.load(std::memory_order_relaxed); }
  // Rounds of applying committed entries that took over 100 ms (etcd_server_slow_apply_total).
  uint64_t slow_applies() const { return slow_applies_.load(std::memory_order_relaxed); }
  std::map<uint64_t, uint64_t> follower_lag() const { return member_->follower_lag(); }
  // The boot membership with each member's published client URLs.
  std::vector<etcdserverpb::Member> Members() const;
  void FillHeader(etcdserverpb::ResponseHeader* header) const { member_->FillHeader(header); }

 private:
  explicit NodeHost(NodeHostOptions options) : options_(std::move(options)) {}
  void Loop();
  void Wake();
  // Needs mu_: whether the node thread is asleep (and now counts as woken); the caller then
  // calls wait_.Notify() after unlocking.
  bool TakeSleeperLocked() {
    const bool s = sleeping_;
    sleeping_ = false;
    return s;
  }

 public:
  // The monotonic clock the member runs on (milliseconds).
  static int64_t NowMs();

 private:
  // The member is built before the transport exists; its messages go out through this shim,
  // whose target is set by Start (before the node thread runs).
  struct Outbound : node::Transport {
    std::atomic<transport::PeerTransport*> target{nullptr};  // read by gRPC threads too
    void Send(raft::Message m) override {
      if (transport::PeerTransport* t = target.load()) t->Send(std::move(m));
    }
    void Flush() override {
      if (transport::PeerTransport* t = target.load()) t->Flush();
    }
  };

  NodeHostOptions options_;
  Outbound outbound_;
  transport::PeerLinks* links_ = nullptr;  // the transport's links, if any (set by Start)
  std::unique_ptr<storage::RaftLogStore> log_;
  std::unique_ptr<member::Member> member_;
  std::thread thread_;

  struct PendingWrite {
    member::Member::Proposal proposal;
    WriteDone done;
  };
  mutable std::mutex mu_;
  // The node thread sleeps here: woken by the others' requests and by the peer links.
  EventWait wait_;
  bool sleeping_ = false;                // guarded by mu_: the node thread is in (or entering) Wait
  bool stopping_ = false;                // guarded by mu_
  bool wake_ = false;                    // guarded by mu_
  std::vector<raft::Message> inbox_;     // guarded by mu_
  std::vector<PendingWrite> proposals_;  // guarded by mu_
  std::vector<ReadDone> reads_;          // guarded by mu_
  std::vector<uint64_t> transfers_;      // guarded by mu_

  // The leader as of the node thread's last iteration, for WaitForLeader.
  mutable std::mutex leader_mu_;
  std::condition_variable leader_cv_;
  uint64_t seen_leader_ = 0;           // guarded by leader_mu_
  uint64_t seen_leader_unlocked_ = 0;  // node thread only: the last value published
  std::atomic<uint64_t> leader_changes_{0};
  std::atomic<int64_t> proposals_pending_{0};
  std::atomic<uint64_t> proposals_failed_{0};
  std::atomic<uint64_t> slow_applies_{0};
  bool loop_done_ = false;  // guarded by leader_mu_: the node thread has stopped

  // Serves linearizable scans once their index is applied; stopped by Stop() after the node
  // thread, running what is queued.
  WorkerPool readers_{2, "cf-reader"};
};

}  // namespace chainfire::server
