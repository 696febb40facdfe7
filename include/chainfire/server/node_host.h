// NodeHost: runs one member's RaftNode on its own thread against RocksDB (RaftLogStore,
// KvStore) and the peer transport, and applies committed requests.
//
// Clients hand it proposals and linearizable reads from any thread; completions run on the
// node thread and must not block (they finish a gRPC reactor). Requests carry an id unique
// across restarts, so the member that proposed an entry completes its waiter when it applies
// that entry, whichever member led.
// Thread-safety: public methods are thread-safe unless noted.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "chainfire/common/worker_pool.h"
#include "chainfire/internal.pb.h"
#include "chainfire/mvcc/kv_store.h"
#include "chainfire/mvcc/watch_hub.h"
#include "chainfire/node/lessor.h"
#include "chainfire/node/raft_node.h"
#include "chainfire/server/cluster_config.h"
#include "chainfire/storage/raft_log_store.h"
#include "chainfire/transport/peer_transport.h"

namespace chainfire::server {

// etcd's server errors (gRPC code and message, as clients match on them).
absl::Status ErrNoLeader();
absl::Status ErrLeaderChanged();
absl::Status ErrTimeout();
absl::Status ErrStopped();

// The outcome of applying one write.
struct WriteResult {
  absl::Status status;
  etcdserverpb::PutResponse put;
  etcdserverpb::DeleteRangeResponse delete_range;
  etcdserverpb::TxnResponse txn;
  etcdserverpb::CompactionResponse compaction;
  etcdserverpb::AlarmResponse alarm;
  etcdserverpb::LeaseGrantResponse lease_grant;
  etcdserverpb::LeaseRevokeResponse lease_revoke;
};

struct NodeHostOptions {
  std::string name;
  uint64_t member_id = 0;
  ClusterSpec cluster;
  std::vector<std::string> client_urls;  // advertised, published through the log
  int heartbeat_ms = 100;
  int election_ticks = 10;  // election timeout in heartbeats
  int request_timeout_ms = 7000;
  std::chrono::milliseconds watch_progress_interval{std::chrono::minutes(10)};
  // Raft snapshots (etcd's --snapshot-count and --experimental-snapshot-catchup-entries):
  // every this many applied entries the member records a snapshot point and truncates its
  // log, keeping the last `snapshot_catchup_entries` for slightly lagging followers.
  uint64_t snapshot_count = 100000;
  uint64_t snapshot_catchup_entries = 5000;
  // Disk-loss recovery (raft::Config::recovering): the data dir was empty and the member was
  // started with --initial-cluster-state=existing.
  bool recovering = false;
};

class NodeHost : private node::Application {
 public:
  using WriteDone = std::function<void(WriteResult)>;
  using ReadDone = std::function<void(absl::Status)>;

  // Opens the raft log and KV store on `engine` (which must outlive the host) and checks their
  // consistency (applied <= commit).
  static absl::StatusOr<std::unique_ptr<NodeHost>> Open(NodeHostOptions options,
                                                        storage::Engine* engine);
  ~NodeHost() override;

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
  // Writes this member's whole state (a raft-snapshot container) for the kSnap message `m`
  // to a file under <data-dir>/snap and returns its path. Any thread (the transport's).
  absl::StatusOr<std::string> WriteSnapshotForPeer(const raft::Message& m);
  // Checks a received raft-snapshot file before it is handed to Raft.
  static absl::Status VerifyReceivedSnapshot(const std::string& path);
  // Where received snapshots are kept until installed.
  std::string snapshot_dir() const;
  // Log truncation and snapshot installs so far (for tests and logs).
  uint64_t first_log_index() const { return first_index_.load(); }
  uint64_t snapshots_installed() const { return snapshots_installed_.load(); }
  // Asks the leader to hand leadership to `target` (0: the follower with the longest log).
  void TransferLeadership(uint64_t target);
  // Graceful shutdown of a leader: hands leadership to the most up-to-date follower and waits
  // up to `timeout` for another member to lead. Returns whether it did (true at once when this
  // member is not the leader or is alone).
  bool HandOverLeadership(std::chrono::milliseconds timeout);

  // Leases. Expiry is decided by the leader, which proposes a revoke when a lease expires;
  // on becoming leader every lease's expiry is reset to its full TTL plus the election timeout.
  // Leader only: renews `id`; the TTL, or 0 when the lease does not exist (as etcd).
  etcdserverpb::LeaseKeepAliveResponse KeepAliveLocal(int64_t id);
  // Leader only: remaining TTL (-1 when unknown, as etcd), granted TTL, optionally keys.
  etcdserverpb::LeaseTimeToLiveResponse TimeToLiveLocal(
      const etcdserverpb::LeaseTimeToLiveRequest& req);
  // The smallest TTL granted, in seconds (etcd's: 1.5 election timeouts, rounded up).
  int64_t min_lease_ttl() const;
  bool is_leader() const { return leader() == member_id(); }
  // "host:port" of the leader's peer URL, or "" when there is no leader.
  std::string LeaderPeerAddress() const;

  mvcc::KvStore& kv() { return *kv_; }
  mvcc::WatchHub& watch_hub() { return *hub_; }
  uint64_t member_id() const { return options_.member_id; }
  uint64_t cluster_id() const { return options_.cluster.cluster_id; }
  const ClusterSpec& cluster_spec() const { return options_.cluster; }
  uint64_t leader() const { return leader_.load(); }
  uint64_t term() const { return term_.load(); }
  uint64_t commit_index() const { return commit_.load(); }
  uint64_t applied_index() const { return kv_->applied_index(); }
  bool bootstrapped() const;
  // The boot membership with each member's published client URLs.
  std::vector<etcdserverpb::Member> Members() const;
  void FillHeader(etcdserverpb::ResponseHeader* header) const;

 private:
  explicit NodeHost(NodeHostOptions options) : options_(std::move(options)) {}
  void Loop();
  void Wake();
  void ExpireRequests();
  void MaybePublish();

  // node::Application (node thread).
  void Apply(const raft::Entry& entry) override;
  void OnAppliedBatch() override;
  void RestoreSnapshot(const raft::Snapshot& snapshot) override;
  std::string TakeSnapshot() override;
  void OnReadReady(uint64_t read_id) override;
  void OnReadFailed(uint64_t read_id) override;
  void OnSoftStateChange(const raft::SoftState& state) override;

  // The node is built before the transport exists; its messages go out through this shim,
  // whose target is set by Start (before the node thread runs).
  struct Outbound : node::Transport {
    transport::PeerTransport* target = nullptr;
    void Send(raft::Message m) override {
      if (target) target->Send(std::move(m));
    }
  };

  NodeHostOptions options_;
  Outbound outbound_;
  storage::Engine* engine_ = nullptr;
  std::unique_ptr<storage::RaftLogStore> log_;
  std::unique_ptr<mvcc::KvStore> kv_;
  std::unique_ptr<mvcc::WatchHub> hub_;
  std::unique_ptr<node::RaftNode> node_;
  transport::PeerTransport* transport_ = nullptr;
  std::thread thread_;

  struct PendingWrite {
    uint64_t id;
    std::string data;
    WriteDone done;
  };
  struct Waiter {
    WriteDone done;
    std::chrono::steady_clock::time_point deadline;
    // Set when the leader changed while the write waited: if the new leader has not applied
    // it by then, it was most likely lost with the old leader's uncommitted tail.
    std::optional<std::chrono::steady_clock::time_point> leader_change_deadline;
  };
  struct ReadWaiter {
    ReadDone done;
    std::chrono::steady_clock::time_point deadline;
  };

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;                             // guarded by mu_
  bool wake_ = false;                                 // guarded by mu_
  std::vector<raft::Message> inbox_;                  // guarded by mu_
  std::vector<PendingWrite> proposals_;               // guarded by mu_
  std::vector<std::pair<uint64_t, ReadDone>> reads_;  // guarded by mu_
  std::vector<uint64_t> transfers_;                   // guarded by mu_
  std::map<uint64_t, std::string> attributes_;        // guarded by mu_: member -> publish blob

  // Node thread only.
  std::map<uint64_t, Waiter> waiters_;
  // One Ready's committed entries are applied as one KvStore batch; their replies wait for it.
  bool batch_open_ = false;
  std::vector<std::pair<WriteDone, WriteResult>> applied_replies_;
  std::map<uint64_t, ReadWaiter> read_waiters_;
  // Serves linearizable scans once their index is applied; stopped by Stop() after the node
  // thread, running what is queued.
  WorkerPool readers_{2};
  std::chrono::steady_clock::time_point leaderless_since_;
  bool publish_pending_ = false;
  bool published_ = false;
  // Startup replay: entries committed before the start, applied after it.
  uint64_t replay_target_ = 0;
  uint64_t replay_from_ = 0;
  bool replay_logged_ = false;
  std::chrono::steady_clock::time_point started_;
  bool recovering_ = false;  // disk-loss recovery not finished (as last seen)
  std::chrono::steady_clock::time_point next_publish_;

  void ExpireLeases();
  // After the store's state was replaced: leases, attributes and watchers follow it.
  void ReloadAfterInstall();
  // Removes snapshot files other than `keep`: received ones not (or no longer) needed, and at
  // startup also leftovers of transfers.
  void CleanSnapshotDir(const std::string& keep);
  static int64_t NowMs();
  node::Lessor lessor_;

  std::atomic<uint64_t> next_id_{0};
  std::atomic<uint64_t> leader_{0};
  std::atomic<uint64_t> term_{0};
  std::atomic<uint64_t> commit_{0};
  std::atomic<uint64_t> first_index_{0};
  std::atomic<uint64_t> snapshots_installed_{0};
  std::atomic<uint64_t> snapshot_files_{0};
};

}  // namespace chainfire::server
