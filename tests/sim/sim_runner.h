// Runs many seeds of the simulation and summarises them (shared by the CLI and the tests).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "simulation.h"

namespace chainfire::sim {

struct SweepOptions {
  uint64_t first_seed = 1;
  uint64_t seeds = 300;
  std::string profile;  // empty: each seed's own profile (ProfileForSeed)
  BugSwitches bugs;
  StorageKind storage = StorageKind::kAuto;
  Application application = Application::kAuto;
  bool stop_at_first_failure = false;
  bool quiet = false;
};

struct SweepResult {
  uint64_t runs = 0;
  std::map<std::string, uint64_t> per_profile;
  std::map<std::string, uint64_t> per_profile_member;      // of those, over the real Member
  std::vector<std::pair<uint64_t, std::string>> failures;  // seed, message
  uint64_t acked_writes = 0, reads = 0, elections = 0, crashes = 0, torn = 0;
  uint64_t fsync_failures = 0, snapshots = 0, inconclusive = 0, on_rocksdb = 0;
  uint64_t leases_granted = 0, leases_expired = 0;
  uint64_t disks_lost = 0, recoveries = 0, bits_flipped = 0, corruptions_detected = 0;
  uint64_t serializable_reads = 0, watch_events = 0, compactions = 0;
  uint64_t auth_changes = 0, auth_refused = 0;
};

// The command that replays exactly one seed.
std::string ReplayCommand(uint64_t seed, const std::string& profile, const BugSwitches& bugs,
                          Application application = Application::kAuto);

SweepResult Sweep(const SweepOptions& options);

}  // namespace chainfire::sim
