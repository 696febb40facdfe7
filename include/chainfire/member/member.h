// Member: the deterministic application behind Raft. It turns committed log entries into etcd
// replies: applies them to the KvStore (one batch per Ready, replies only once the batch is
// visible), matches replies to waiters by (proposer, request id), fails waiters on a leader
// change with etcd's errors, expires leases (leader), publishes this member's attributes,
// installs and redoes Raft snapshots, and picks the target of a leadership hand-over.
//
// It starts no thread and reads no clock: time comes in through SetTime() (milliseconds of a
// monotonic clock), randomness through MemberOptions::seed, and log-write completions through
// the node::NodeStorage it is given. With MemberOptions::background_threads false the KvStore's
// compactor and the WatchHub's catch-up also run only when the owner calls their step
// functions, so a seeded simulation replays it exactly. Production wraps it in
// server::NodeHost (a thread, an inbox, wake-ups); the simulation (tests/sim/member_world.cc)
// drives several of them on one thread.
//
// Thread-safety: methods under "Owner thread" must be called from one thread at a time (the
// owner's); completions (WriteDone, ReadDone) run on it and must not block. Methods under
// "Any thread" are safe from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "chainfire/auth/auth_store.h"
#include "chainfire/auth/simple_tokens.h"
#include "chainfire/backup.pb.h"
#include "chainfire/internal.pb.h"
#include "chainfire/mvcc/kv_store.h"
#include "chainfire/mvcc/watch_hub.h"
#include "chainfire/node/lessor.h"
#include "chainfire/node/raft_node.h"

namespace chainfire::member {

// etcd's server errors (gRPC code and message, as clients match on them).
absl::Status ErrNoLeader();
absl::Status ErrLeaderChanged();
absl::Status ErrTimeout();
absl::Status ErrStopped();

// The request format this build writes into the log (internal::Request::format) and the
// newest it can apply. An entry of a newer format, or with an operation this build does not
// know, stops the member with an error naming it: it is never skipped. Format 2 adds auth
// (its operations, and the caller on requests made while auth is on); entries without them are
// still written as format 1, which older builds apply.
inline constexpr uint32_t kRequestFormat = 2;

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
  auth::AuthResult auth;
};

// TEST ONLY: bugs the simulation must catch (docs/testing.md, "bug switches").
struct MemberBugs {
  bool reply_before_batch_visible = false;  // replies as each entry is staged, not committed
  bool reply_by_log_index = false;          // waiters matched by the index a leader predicted
  bool lease_no_reset_on_promote = false;   // a new leader keeps its stale lease expiries
  bool snapshot_forgets_leases = false;     // a snapshot install leaves the lease table stale
  bool auth_not_rechecked = false;          // writes are not checked again at apply
};

struct MemberOptions {
  std::string name;
  uint64_t member_id = 0;
  std::vector<uint64_t> voters;          // the boot membership's member IDs
  std::vector<std::string> client_urls;  // advertised, published through the log
  backup::BackupHeader membership;       // what snapshot files sent to peers carry
  std::string snapshot_dir;              // where snapshot files are written and received
  int heartbeat_ms = 100;                // one Tick()
  int election_ticks = 10;               // election timeout in ticks
  int request_timeout_ms = 7000;
  // Simple tokens end after this long without use (etcd's --auth-token-ttl, 300 s).
  int64_t auth_token_ttl_ms = 300000;
  // Raft snapshots (etcd's --snapshot-count and --experimental-snapshot-catchup-entries).
  uint64_t snapshot_count = 100000;
  uint64_t snapshot_catchup_entries = 5000;
  uint64_t max_size_per_msg = 4 << 20;
  size_t max_inflight_msgs = 256;
  // Disk-loss recovery (raft::Config::recovering).
  bool recovering = false;
  // Drives Raft's randomness and the request ids; must differ from one start to the next.
  uint64_t seed = 0;
  // False: no compactor or watch catch-up thread (the owner calls their step functions).
  bool background_threads = true;
  std::chrono::milliseconds watch_progress_interval{std::chrono::minutes(10)};
  MemberBugs bugs;
  bool testing_compaction_resurrects = false;          // TEST ONLY: see mvcc::KvStoreOptions
  bool testing_count_unpersisted_own_entries = false;  // TEST ONLY: raft::Config's
  // Called on the owner thread after each applied request (entry, request, result), before
  // the reply; for the simulation's checkers.
  std::function<void(const raft::Entry&, const internal::Request&, const WriteResult&)> on_applied;
};

class Member : private node::Application {
 public:
  using WriteDone = std::function<void(WriteResult)>;
  using ReadDone = std::function<void(absl::Status)>;

  // A request stamped with this member as proposer and a fresh id, serialized.
  struct Proposal {
    uint64_t id = 0;
    std::string data;
  };

  // Opens the KV store on `engine` and the Raft node on `log`, and checks their consistency
  // (applied <= commit). `engine`, `log` and `transport` must outlive the member. Installs a
  // snapshot again if a crash interrupted its install.
  static absl::StatusOr<std::unique_ptr<Member>> Open(MemberOptions options,
                                                      storage::Engine* engine,
                                                      node::NodeStorage* log,
                                                      node::Transport* transport, int64_t now_ms);
  ~Member() override;

  // ---- Owner thread ----
  // The owner's monotonic clock; deadlines and lease expiry are measured on it.
  void SetTime(int64_t now_ms);
  void Step(raft::Message m);
  // Proposes a write; `done` runs once, on the owner thread (at once when Raft refuses it).
  void Propose(Proposal p, WriteDone done);
  // Proposes several writes in order as few Raft proposals (one append and one message per
  // follower for up to max_size_per_msg bytes of them); each `done` runs once, as for Propose.
  void ProposeBatch(std::vector<std::pair<Proposal, WriteDone>> writes);
  // Confirms leadership and waits until everything committed before the call is applied;
  // then `done(OK)` runs and a local read is linearizable; or etcd's error.
  void Read(ReadDone done);
  // Asks the leader to hand leadership to `target` (0: the follower with the longest log).
  void TransferLeadership(uint64_t target);
  // One heartbeat: Raft's tick, request deadlines, publishing, lease expiry.
  void Tick();
  // Runs the Raft pipeline until it has nothing to do (bounded). True when it did something.
  bool Pump();
  // True once a log write failed: the member must stop (never continue as if durable).
  bool stopped() const { return node_->stopped(); }
  const absl::Status& stop_reason() const { return node_->stop_reason(); }
  // Fails every pending write and read with ErrStopped (at shutdown).
  void FailPending();
  raft::Status raft_status() const { return node_->status(); }
  // On the leader: each follower's entries not yet replicated to it (last index - match), as of
  // at most a second ago; empty elsewhere. Any thread.
  std::map<uint64_t, uint64_t> follower_lag() const;
  uint64_t raft_applied() const { return node_->applied(); }
  size_t writes_in_flight() const { return node_->writes_in_flight(); }
  absl::StatusOr<raft::Term> TermAt(raft::Index i) const { return node_->TermAt(i); }

  // ---- Any thread ----
  Proposal Prepare(internal::Request request);
  mvcc::KvStore& kv() { return *kv_; }
  mvcc::WatchHub& watch_hub() { return *hub_; }
  // The replicated auth store (checks on any thread read its view) and this member's simple
  // tokens (looked up with the owner's clock, NodeHost::NowMs in production).
  const auth::AuthStore& auth() const { return auth_; }
  auth::SimpleTokens& tokens() { return *tokens_; }
  uint64_t member_id() const { return options_.member_id; }
  uint64_t leader() const { return leader_.load(); }
  bool is_leader() const { return leader() == member_id(); }
  uint64_t term() const { return term_.load(); }
  uint64_t commit_index() const { return commit_.load(); }
  uint64_t applied_index() const { return kv_->applied_index(); }
  uint64_t first_log_index() const { return first_index_.load(); }
  uint64_t snapshots_installed() const { return snapshots_installed_.load(); }
  bool bootstrapped() const { return bootstrapped_; }
  // Every member's last published attributes (internal::PublishMember, serialized).
  std::map<uint64_t, std::string> Attributes() const;
  // Leader only: renews `id`; the TTL in seconds, or 0 when the lease does not exist (etcd).
  etcdserverpb::LeaseKeepAliveResponse KeepAlive(int64_t id, int64_t now_ms);
  // Leader only: remaining TTL (-1 when unknown, as etcd), granted TTL, optionally keys.
  etcdserverpb::LeaseTimeToLiveResponse TimeToLive(const etcdserverpb::LeaseTimeToLiveRequest& req,
                                                   int64_t now_ms);
  // The smallest TTL granted, in seconds (etcd's: 1.5 election timeouts, rounded up).
  int64_t min_lease_ttl() const;
  void FillHeader(etcdserverpb::ResponseHeader* header) const;
  // Writes this member's whole state (a raft-snapshot container) for the kSnap message `m` to
  // a file under snapshot_dir() and returns its path.
  absl::StatusOr<std::string> WriteSnapshotForPeer(const raft::Message& m);
  // Checks a received raft-snapshot file before it is handed to Raft.
  static absl::Status VerifyReceivedSnapshot(const std::string& path);
  const std::string& snapshot_dir() const { return options_.snapshot_dir; }

 private:
  explicit Member(MemberOptions options) : options_(std::move(options)) {}
  void ExpireRequests();
  // Fails every waiting write with `status`.
  void FailAllWrites(const absl::Status& status);
  void MaybePublish();
  void ExpireLeases();
  void ProposeInternal(internal::Request req, WriteDone done);
  // One Raft proposal of the writes in [first, last).
  void ProposeChunk(std::vector<std::pair<Proposal, WriteDone>>::iterator first,
                    std::vector<std::pair<Proposal, WriteDone>>::iterator last);
  void Reply(uint64_t index, const internal::Request& req, WriteResult result);
  WriteResult ApplyRequest(uint64_t index, const internal::Request& req);
  // An auth operation: applied to the auth store, persisted with the entry, tokens updated.
  void ApplyAuth(uint64_t index, const internal::Request& req, WriteResult* result);
  // etcd 3.4's apply-time permission check of a key-value or lease request (auth on).
  absl::Status CheckPermission(const internal::Request& req) const;
  // After the store's state was replaced: leases, attributes and watchers follow it.
  void ReloadAfterInstall();
  // Removes snapshot files other than `keep`; `at_start`: also leftovers of transfers.
  void CleanSnapshotDir(const std::string& keep, bool at_start);
  void UpdateStatus();

  // node::Application (owner thread).
  void Apply(const raft::Entry& entry) override;
  void OnAppliedBatch() override;
  void RestoreSnapshot(const raft::Snapshot& snapshot) override;
  std::string TakeSnapshot() override { return std::string(); }
  void OnReadReady(uint64_t read_id) override;
  void OnReadFailed(uint64_t read_id) override;
  void OnSoftStateChange(const raft::SoftState& state) override;

  struct Waiter {
    WriteDone done;
    int64_t deadline_ms;
    // Set when the leader changed while the write waited: if the new leader has not applied
    // it by then, it was most likely lost with the old leader's uncommitted tail.
    std::optional<int64_t> leader_change_deadline_ms;
  };
  struct ReadWaiter {
    ReadDone done;
    int64_t deadline_ms;
  };

  MemberOptions options_;
  storage::Engine* engine_ = nullptr;
  node::NodeStorage* log_ = nullptr;
  std::unique_ptr<mvcc::KvStore> kv_;
  std::unique_ptr<mvcc::WatchHub> hub_;
  std::unique_ptr<node::Lessor> lessor_;
  std::unique_ptr<node::RaftNode> node_;
  auth::AuthStore auth_;
  std::unique_ptr<auth::SimpleTokens> tokens_;
  int64_t tokens_expired_ms_ = 0;  // owner thread: the last sweep of idle tokens

  // Owner thread only.
  int64_t now_ms_ = 0;
  std::map<uint64_t, Waiter> waiters_;            // by request id (this member is the proposer)
  std::map<uint64_t, uint64_t> waiter_by_index_;  // bug switch reply_by_log_index only
  bool batch_open_ = false;
  std::vector<std::pair<WriteDone, WriteResult>> applied_replies_;
  std::map<uint64_t, ReadWaiter> read_waiters_;
  uint64_t next_read_ = 1;
  int64_t leaderless_since_ms_ = 0;
  bool publish_pending_ = false;
  bool published_ = false;
  int64_t next_publish_ms_ = 0;
  uint64_t replay_target_ = 0;
  uint64_t log_at_start_ = 0;  // the last log index at start: entries up to it predate it
  uint64_t replay_from_ = 0;
  bool replay_logged_ = false;
  int64_t started_ms_ = 0;
  bool recovering_ = false;
  bool bootstrapped_ = false;

  mutable std::mutex attributes_mu_;
  std::map<uint64_t, std::string> attributes_;  // guarded by attributes_mu_

  std::atomic<uint64_t> next_id_{0};
  std::atomic<uint64_t> leader_{0};
  std::atomic<uint64_t> term_{0};
  mutable std::mutex lag_mu_;
  std::map<uint64_t, uint64_t> follower_lag_;  // guarded by lag_mu_
  int64_t lag_published_ms_ = 0;               // node thread only
  bool lag_empty_ = true;                      // node thread only
  std::atomic<uint64_t> commit_{0};
  std::atomic<uint64_t> first_index_{0};
  std::atomic<uint64_t> snapshots_installed_{0};
  std::atomic<uint64_t> snapshot_files_{0};
};

}  // namespace chainfire::member
