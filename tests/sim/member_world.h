// The member simulation's world (tests/sim/member_world.cc: members, network, faults, the loop
// and the final checks; tests/sim/member_clients.cc: the simulated etcd clients and their
// checkers): N real member::Members, each on the real KvStore and the production RaftLogStore
// in one RocksDB (RocksDB's in-memory Env under the fault file system), driven on one thread by
// one seed. The checkers are listed in docs/testing.md ("The member simulation").
// Thread-safety: none (one thread).
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <queue>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "chainfire/common/random.h"
#include "chainfire/member/member.h"
#include "linearizability.h"
#include "rocks_sim_storage.h"
#include "safety_checker.h"
#include "simulation.h"

namespace chainfire::sim::member_sim {

// What a checker throws (and CF_CHECK, through the fatal handler): ends the seed as failed.
struct Violation : std::runtime_error {
  using std::runtime_error::runtime_error;
};

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

// The auth store as the simulation's plain reference sees it (only what its workload uses:
// users, their roles, the single-key READWRITE grants of role "wr", the revision).
struct AuthModel {
  bool enabled = false;
  uint64_t revision = 0;
  std::map<std::string, std::set<std::string>> users;  // user -> roles
  std::set<std::string> roles;
  std::set<std::string> wr_keys;
};

// "PUT k=v c<create> v<version>" / "DELETE k= ...": how the watch checkers compare events.
std::string Describe(const mvccpb::Event& e);
// The revision in a write's response header (0 for requests without one).
int64_t HeaderRevision(const internal::Request& req, const member::WriteResult& r);

// One run: Run() starts the members, steps the world 1 ms at a time (faults, network, ticks,
// clients, pumps, the background steps) for the run's duration, settles, and checks; the first
// violation ends it. Not reusable: one world per run.
class MemberWorld {
 public:
  explicit MemberWorld(const SimOptions& o) : opt_(o), profile_(o.profile), rng_(o.seed) {
    n_ = profile_.nodes != 0 ? profile_.nodes : (rng_.Chance(0.5) ? 3 : 5);
    disk_faults_ = DiskFaultsFor(o);
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
  // Auth (member_auth_sim.cc): sets up root, a user "w" with role "wr", enables auth, then
  // grants and revokes wr's keys while the clients write as root or as w; every applied entry's
  // auth outcome is checked against the plain reference (AuthModel).
  void Auth();
  void StampCaller(Node& n, internal::Request* req);
  void CheckAuthApplied(Node& n, const raft::Entry& e, const internal::Request& req,
                        const member::WriteResult& r);
  void Watches();
  void OpenWatch(size_t ci, ClientWatch& w, int64_t from);
  // The member's own watch of every key from its next revision: the watch checkers' reference.
  void WatchEverything(Node& n);
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

  int auth_setup_step_ = 0;          // the next setup operation (6: done)
  bool auth_setup_pending_ = false;  // one setup proposal in flight
  uint64_t auth_setup_retry_ms_ = 0;
  std::map<uint64_t, AuthModel> auth_model_after_;   // index of an auth entry -> model after it
  std::map<uint64_t, std::string> auth_outcome_at_;  // index of a checked entry -> its outcome

  std::map<int64_t, LeaseState> leases_;
  int64_t next_lease_ = 1000;
  uint64_t last_election_ms_ = 0;
  SafetyChecker checker_;
  SimResult result_;
};

}  // namespace chainfire::sim::member_sim
