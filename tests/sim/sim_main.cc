// chainfire-sim: run the deterministic simulation from the command line.
//
//   chainfire-sim --seed=N [--profile=P] [--trace] [--bug=B]   replay one seed
//   chainfire-sim --seeds=K [--first=F] [--profile=P]          sweep K seeds
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "sim_runner.h"

using namespace chainfire::sim;

namespace {
bool Flag(const char* arg, const char* name, std::string* value) {
  const size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) != 0) return false;
  if (arg[n] == '=') {
    *value = arg + n + 1;
    return true;
  }
  if (arg[n] == '\0') {
    *value = "";
    return true;
  }
  return false;
}

int Usage() {
  std::fprintf(
      stderr,
      "usage: chainfire-sim --seed=N "
      "[--profile=calm|lossy|partition|crash|chaos|leader-crash|election-storm|disk-loss|faulty-"
      "disk] "
      "[--trace] [--storage=sim|rocksdb] [--app=member|register] "
      "[--bug=vote-not-persisted|commit-before-leader-fsync|"
      "read-without-read-index|fsync-lies|lease-no-reset|disk-loss-rejoins-as-new|ignore-fsync-"
      "failure|reply-before-visible|reply-to-wrong-waiter|snapshot-forgets-leases|auth-not-"
      "rechecked|"
      "compaction-resurrects]\n"
      "       chainfire-sim --seeds=K [--first=F] [--profile=P] [--app=A] [--bug=B]\n");
  return 2;
}
}  // namespace

int main(int argc, char** argv) {
  std::string v, profile;
  uint64_t seed = 0, seeds = 0, first = 1;
  bool trace = false;
  BugSwitches bugs;
  StorageKind storage = StorageKind::kAuto;
  Application application = Application::kAuto;
  for (int i = 1; i < argc; ++i) {
    if (Flag(argv[i], "--seed", &v)) {
      seed = std::strtoull(v.c_str(), nullptr, 10);
    } else if (Flag(argv[i], "--seeds", &v)) {
      seeds = std::strtoull(v.c_str(), nullptr, 10);
    } else if (Flag(argv[i], "--first", &v)) {
      first = std::strtoull(v.c_str(), nullptr, 10);
    } else if (Flag(argv[i], "--profile", &v)) {
      profile = v;
    } else if (Flag(argv[i], "--storage", &v)) {
      if (v == "sim") {
        storage = StorageKind::kSimDisk;
      } else if (v == "rocksdb") {
        storage = StorageKind::kRocksDbInMemory;
      } else {
        return Usage();
      }
    } else if (Flag(argv[i], "--app", &v)) {
      if (v == "member") {
        application = Application::kMember;
      } else if (v == "register") {
        application = Application::kRegister;
      } else {
        return Usage();
      }
    } else if (Flag(argv[i], "--trace", &v)) {
      trace = true;
    } else if (Flag(argv[i], "--bug", &v)) {
      if (v == "vote-not-persisted") {
        bugs.vote_not_persisted = true;
      } else if (v == "commit-before-leader-fsync") {
        bugs.commit_before_leader_fsync = true;
      } else if (v == "read-without-read-index") {
        bugs.read_without_read_index = true;
      } else if (v == "fsync-lies") {
        bugs.fsync_lies = true;
      } else if (v == "lease-no-reset") {
        bugs.lease_no_reset_on_promote = true;
      } else if (v == "disk-loss-rejoins-as-new") {
        bugs.disk_loss_rejoins_as_new = true;
      } else if (v == "ignore-fsync-failure") {
        bugs.ignore_fsync_failure = true;
      } else if (v == "reply-before-visible") {
        bugs.reply_before_batch_visible = true;
      } else if (v == "reply-to-wrong-waiter") {
        bugs.reply_to_wrong_waiter = true;
      } else if (v == "snapshot-forgets-leases") {
        bugs.snapshot_forgets_leases = true;
      } else if (v == "auth-not-rechecked") {
        bugs.auth_not_rechecked = true;
      } else if (v == "compaction-resurrects") {
        bugs.compaction_resurrects = true;
      } else {
        return Usage();
      }
    } else {
      return Usage();
    }
  }
  if (!profile.empty()) {
    bool known = false;
    for (const FaultProfile& p : Profiles()) known |= p.name == profile;
    if (!known) return Usage();
  }
  if (seed != 0) {
    SimOptions o;
    o.seed = seed;
    o.profile = profile.empty() ? ProfileForSeed(seed) : ProfileByName(profile);
    o.bugs = bugs;
    o.trace = trace;
    o.storage = storage;
    o.application = application;
    const SimResult r = RunSimulation(o);
    std::printf(
        "seed=%llu profile=%s app=%s: %s (acked writes %llu, reads %llu, elections %llu, "
        "crashes %llu, max commit %llu)\n",
        static_cast<unsigned long long>(seed), o.profile.name.c_str(),
        r.real_member ? "member" : "register",
        r.ok ? (r.linearizability_inconclusive ? "ok (linearizability inconclusive)" : "ok")
             : r.failure.c_str(),
        static_cast<unsigned long long>(r.acked_writes), static_cast<unsigned long long>(r.reads),
        static_cast<unsigned long long>(r.elections), static_cast<unsigned long long>(r.crashes),
        static_cast<unsigned long long>(r.max_commit));
    return r.ok ? 0 : 1;
  }
  if (seeds == 0) return Usage();
  SweepOptions so;
  so.first_seed = first;
  so.seeds = seeds;
  so.profile = profile;
  so.bugs = bugs;
  so.storage = storage;
  so.application = application;
  const SweepResult r = Sweep(so);
  return r.failures.empty() ? 0 : 1;
}
