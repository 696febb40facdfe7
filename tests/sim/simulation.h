// The deterministic simulation: N RaftNodes on one thread with a seeded fake clock, network
// and disks, a client workload on a few registers, and checkers after every step.
//
// One seed drives every choice. Run(seed, profile) replays exactly: the same seed and profile
// give the same run, message for message.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "chainfire/common/random.h"

namespace chainfire::sim {

// How hostile the environment is. See docs/testing.md for the profiles.
struct FaultProfile {
  std::string name;
  int nodes = 3;                // 0: 3 or 5 chosen by the seed
  uint64_t max_delay_ms = 5;    // network delay drawn from [1, max_delay_ms] (reorders)
  double drop = 0;              // chance a message is lost
  double duplicate = 0;         // chance a message is delivered twice
  double partition_rate = 0;    // per ms: chance to start a partition
  uint64_t partition_ms = 300;  // longest partition
  double crash_rate = 0;        // per ms: chance to crash a running member
  uint64_t max_down_ms = 300;   // longest time a crashed member stays down
  double crash_leader = 0;      // chance a crash picks the leader rather than any member
  uint64_t disk_max_latency_ms = 3;
  double fsync_failure = 0;      // chance one fsync fails (the member stops)
  double keep_unsynced = 0.5;    // at a crash, chance a prefix of unsynced bytes survives
  double transfer_rate = 0;      // per ms: chance the leader is asked to transfer leadership
  uint64_t snapshot_every = 40;  // applied entries between snapshots
  double disk_loss = 0;          // chance a crash also destroys the member's whole disk
  double bit_flip = 0;           // RocksDB runs: chance a crash also flips a bit of a data file
  bool rocksdb_only = false;     // every seed runs on RocksDB through the fault file system
  bool isolate_leader = false;   // partitions cut the leader off (or only its outbound links)
};

// Test-only bugs, each of which a checker must catch.
struct BugSwitches {
  bool vote_not_persisted = false;          // the disk drops the vote from the hard state
  bool commit_before_leader_fsync = false;  // the leader counts unsynced own entries
  bool read_without_read_index = false;     // reads served from local state at once
  bool fsync_lies = false;                  // a crash also loses the last "synced" write
  bool lease_no_reset_on_promote = false;   // a new leader keeps its stale lease expiries
  bool disk_loss_rejoins_as_new = false;    // a member that lost its disk votes at once
  bool ignore_fsync_failure = false;        // RocksDB runs: writes count as durable after a
                                            // failed WAL fsync (the member carries on)
  // In the real Member (member simulation only):
  bool reply_before_batch_visible = false;  // a write is answered before its batch commits
  bool reply_to_wrong_waiter = false;       // replies matched by the index a leader predicted
  bool snapshot_forgets_leases = false;     // a snapshot install leaves the lessor stale
  bool compaction_resurrects = false;       // physical compaction brings a deleted key back
  bool auth_not_rechecked = false;          // writes are not checked again at apply
};

// What runs behind Raft. kMember: the real member::Member on the real KvStore (etcd clients);
// kRegister: a register machine (tests/sim/register_app.h) on SimDisk or RocksDB. kAuto: three
// seeds in four (by a hash of the seed) run the real Member, unless the storage or a bug switch
// needs the register machine.
enum class Application { kAuto, kRegister, kMember };

// Which storage the members run on. kAuto: a quarter of the seeds (every profile) run the
// production RaftLogStore on RocksDB's in-memory Env; the rest run on SimDisk (torn writes).
enum class StorageKind { kAuto, kSimDisk, kRocksDbInMemory };

struct SimOptions {
  uint64_t seed = 1;
  FaultProfile profile;
  BugSwitches bugs;
  uint64_t duration_ms = 3000;  // time with faults and client load
  uint64_t settle_ms = 6000;    // afterwards: no faults, until every member converges
  int clients = 4;
  int registers = 3;
  bool trace = false;  // print every event (for replaying one seed)
  StorageKind storage = StorageKind::kAuto;
  Application application = Application::kAuto;
};

struct SimResult {
  bool ok = true;
  std::string failure;  // what a checker found (first violation)
  // Statistics.
  uint64_t acked_writes = 0;
  uint64_t unknown_writes = 0;
  uint64_t reads = 0;
  uint64_t failed_ops = 0;
  uint64_t elections = 0;
  uint64_t crashes = 0;
  uint64_t torn_writes_cut = 0;
  uint64_t fsync_failures = 0;
  uint64_t snapshots_installed = 0;
  uint64_t messages = 0;
  uint64_t max_commit = 0;
  uint64_t leases_granted = 0;
  uint64_t leases_expired = 0;
  uint64_t disks_lost = 0;
  uint64_t recoveries_finished = 0;
  uint64_t bits_flipped = 0;
  uint64_t corruptions_detected = 0;  // opens refused on a flipped bit (then rebuilt)
  bool linearizability_inconclusive = false;
  bool real_storage = false;  // ran on RocksDB (in-memory Env)
  bool real_member = false;   // ran the real Member (member simulation)
  uint64_t serializable_reads = 0;
  uint64_t watch_events = 0;         // delivered to simulated clients
  uint64_t compactions = 0;          // acknowledged
  uint64_t auth_changes = 0;         // auth operations applied (checked against the reference)
  uint64_t auth_refused_writes = 0;  // writes refused at apply (permission, old revision)
};

// The named profiles: calm, lossy, partition, crash, chaos, leader-crash, election-storm,
// disk-loss, faulty-disk, leader-isolation.
const std::vector<FaultProfile>& Profiles();
// The profile by name; aborts on an unknown name.
const FaultProfile& ProfileByName(const std::string& name);
// The profile a seed uses when none is named (spreads seeds over all profiles).
const FaultProfile& ProfileForSeed(uint64_t seed);
// Cuts `leader` off (every link, or only its outbound ones, by chance): a leader-isolation
// partition in `blocked[from][to]`. Returns what it did, for the trace.
std::string IsolateLeader(std::vector<std::vector<bool>>& blocked, int n, uint64_t leader,
                          Random& rng);

// The disk faults of `options`' profile and bug switches (sim_disk.h), for either world.
struct DiskFaults;
DiskFaults DiskFaultsFor(const SimOptions& options);

// Which application a run of `options` uses (resolves kAuto).
Application ApplicationFor(const SimOptions& options);

SimResult RunSimulation(const SimOptions& options);
// The member simulation (tests/sim/member_world.cc); RunSimulation calls it for kMember.
SimResult RunMemberSimulation(const SimOptions& options);

}  // namespace chainfire::sim
