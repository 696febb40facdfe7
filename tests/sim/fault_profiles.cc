// The fault profiles (seed mod 10 picks one) and the disk faults a run's options imply; shared by
// the register world (simulation.cc) and the member world (member_world.cc).
#include "chainfire/common/check.h"
#include "sim_disk.h"
#include "simulation.h"

namespace chainfire::sim {

const std::vector<FaultProfile>& Profiles() {
  static const std::vector<FaultProfile> profiles = [] {
    std::vector<FaultProfile> p;
    FaultProfile calm;
    calm.name = "calm";
    calm.nodes = 0;
    p.push_back(calm);

    FaultProfile lossy;
    lossy.name = "lossy";
    lossy.nodes = 0;
    lossy.max_delay_ms = 30;
    lossy.drop = 0.1;
    lossy.duplicate = 0.05;
    lossy.transfer_rate = 0.002;
    p.push_back(lossy);

    FaultProfile partition;
    partition.name = "partition";
    partition.nodes = 0;
    partition.max_delay_ms = 10;
    partition.drop = 0.02;
    partition.partition_rate = 0.004;
    partition.partition_ms = 600;
    p.push_back(partition);

    FaultProfile crash;
    crash.name = "crash";
    crash.nodes = 0;
    crash.max_delay_ms = 8;
    crash.crash_rate = 0.004;
    crash.max_down_ms = 200;
    crash.disk_max_latency_ms = 25;
    crash.keep_unsynced = 0.5;
    p.push_back(crash);

    FaultProfile chaos;
    chaos.name = "chaos";
    chaos.nodes = 0;
    chaos.max_delay_ms = 20;
    chaos.drop = 0.05;
    chaos.duplicate = 0.02;
    chaos.partition_rate = 0.002;
    chaos.crash_rate = 0.002;
    chaos.disk_max_latency_ms = 15;
    chaos.fsync_failure = 0.001;
    chaos.transfer_rate = 0.001;
    chaos.snapshot_every = 25;
    p.push_back(chaos);

    FaultProfile leader_crash;  // power loss of the leader mid-write, slow and uneven disks
    leader_crash.name = "leader-crash";
    leader_crash.nodes = 0;
    leader_crash.max_delay_ms = 6;
    leader_crash.drop = 0.02;
    leader_crash.crash_rate = 0.008;
    leader_crash.crash_leader = 0.8;
    leader_crash.max_down_ms = 60;
    leader_crash.disk_max_latency_ms = 40;
    leader_crash.keep_unsynced = 0.1;
    p.push_back(leader_crash);

    FaultProfile storm;  // overlapping elections: slow, duplicating network; brief crashes
    storm.name = "election-storm";
    storm.nodes = 0;
    storm.max_delay_ms = 40;
    storm.duplicate = 0.2;
    storm.drop = 0.05;
    storm.crash_rate = 0.01;
    storm.crash_leader = 0.3;
    storm.max_down_ms = 20;
    storm.disk_max_latency_ms = 10;
    p.push_back(storm);

    FaultProfile disk_loss;  // a member loses its whole disk and rejoins in recovery
    disk_loss.name = "disk-loss";
    disk_loss.nodes = 0;
    disk_loss.max_delay_ms = 8;
    disk_loss.drop = 0.01;
    disk_loss.crash_rate = 0.004;
    disk_loss.crash_leader = 0.4;
    disk_loss.max_down_ms = 150;
    disk_loss.disk_max_latency_ms = 20;
    disk_loss.disk_loss = 0.6;
    p.push_back(disk_loss);

    // RocksDB through the fault file system: failed fsyncs, torn WAL tails at crashes, bit
    // flips at rest (a refused open is answered like a lost disk: wipe and recover).
    FaultProfile faulty_disk;
    faulty_disk.name = "faulty-disk";
    faulty_disk.nodes = 0;
    faulty_disk.max_delay_ms = 8;
    faulty_disk.drop = 0.01;
    faulty_disk.crash_rate = 0.004;
    faulty_disk.crash_leader = 0.4;
    faulty_disk.max_down_ms = 150;
    faulty_disk.disk_max_latency_ms = 20;
    faulty_disk.fsync_failure = 0.003;
    faulty_disk.keep_unsynced = 0.7;
    faulty_disk.bit_flip = 0.3;
    faulty_disk.rocksdb_only = true;
    p.push_back(faulty_disk);

    // The leader cut off for a moment, again and again (a flapping link, a long GC pause): its
    // writes in flight are replaced by a new leader's while it still holds their waiters.
    FaultProfile isolation;
    isolation.name = "leader-isolation";
    isolation.nodes = 0;
    isolation.max_delay_ms = 5;
    isolation.partition_rate = 0.006;
    isolation.partition_ms = 260;
    isolation.isolate_leader = true;
    p.push_back(isolation);
    return p;
  }();
  return profiles;
}

const FaultProfile& ProfileByName(const std::string& name) {
  for (const FaultProfile& p : Profiles()) {
    if (p.name == name) return p;
  }
  Fatal("unknown fault profile: " + name);
}

const FaultProfile& ProfileForSeed(uint64_t seed) { return Profiles()[seed % Profiles().size()]; }

DiskFaults DiskFaultsFor(const SimOptions& o) {
  DiskFaults f;
  f.max_latency_ms = o.profile.disk_max_latency_ms;
  f.fsync_failure = o.profile.fsync_failure;
  f.keep_unsynced = o.profile.keep_unsynced;
  f.testing_drop_vote = o.bugs.vote_not_persisted;
  f.testing_ignore_fsync_failure = o.bugs.ignore_fsync_failure;
  return f;
}

}  // namespace chainfire::sim
