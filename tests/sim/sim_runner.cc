#include "sim_runner.h"

#include <cstdio>

#include "absl/strings/str_cat.h"

namespace chainfire::sim {

std::string ReplayCommand(uint64_t seed, const std::string& profile, const BugSwitches& bugs,
                          Application application) {
  std::string cmd = absl::StrCat("build/bin/chainfire-sim --seed=", seed, " --profile=", profile);
  if (bugs.vote_not_persisted) cmd += " --bug=vote-not-persisted";
  if (bugs.commit_before_leader_fsync) cmd += " --bug=commit-before-leader-fsync";
  if (bugs.read_without_read_index) cmd += " --bug=read-without-read-index";
  if (bugs.fsync_lies) cmd += " --bug=fsync-lies";
  if (bugs.lease_no_reset_on_promote) cmd += " --bug=lease-no-reset";
  if (bugs.disk_loss_rejoins_as_new) cmd += " --bug=disk-loss-rejoins-as-new";
  if (bugs.ignore_fsync_failure) cmd += " --bug=ignore-fsync-failure";
  if (bugs.reply_before_batch_visible) cmd += " --bug=reply-before-visible";
  if (bugs.reply_to_wrong_waiter) cmd += " --bug=reply-to-wrong-waiter";
  if (bugs.snapshot_forgets_leases) cmd += " --bug=snapshot-forgets-leases";
  if (bugs.auth_not_rechecked) cmd += " --bug=auth-not-rechecked";
  if (bugs.compaction_resurrects) cmd += " --bug=compaction-resurrects";
  if (application == Application::kMember) cmd += " --app=member";
  if (application == Application::kRegister) cmd += " --app=register";
  return cmd + " --trace";
}

SweepResult Sweep(const SweepOptions& o) {
  SweepResult r;
  for (uint64_t seed = o.first_seed; seed < o.first_seed + o.seeds; ++seed) {
    SimOptions so;
    so.seed = seed;
    so.profile = o.profile.empty() ? ProfileForSeed(seed) : ProfileByName(o.profile);
    so.bugs = o.bugs;
    so.storage = o.storage;
    so.application = o.application;
    const SimResult res = RunSimulation(so);
    ++r.runs;
    ++r.per_profile[so.profile.name];
    if (res.real_member) ++r.per_profile_member[so.profile.name];
    r.serializable_reads += res.serializable_reads;
    r.watch_events += res.watch_events;
    r.compactions += res.compactions;
    r.auth_changes += res.auth_changes;
    r.auth_refused += res.auth_refused_writes;
    r.acked_writes += res.acked_writes;
    r.reads += res.reads;
    r.elections += res.elections;
    r.crashes += res.crashes;
    r.torn += res.torn_writes_cut;
    r.fsync_failures += res.fsync_failures;
    r.snapshots += res.snapshots_installed;
    r.inconclusive += res.linearizability_inconclusive ? 1 : 0;
    r.on_rocksdb += res.real_storage ? 1 : 0;
    r.leases_granted += res.leases_granted;
    r.leases_expired += res.leases_expired;
    r.disks_lost += res.disks_lost;
    r.recoveries += res.recoveries_finished;
    r.bits_flipped += res.bits_flipped;
    r.corruptions_detected += res.corruptions_detected;
    if (!res.ok) {
      r.failures.emplace_back(seed, res.failure);
      if (!o.quiet) {
        std::printf("FAIL seed=%llu profile=%s: %s\n  reproduce: %s\n",
                    static_cast<unsigned long long>(seed), so.profile.name.c_str(),
                    res.failure.c_str(),
                    ReplayCommand(seed, so.profile.name, o.bugs, o.application).c_str());
      }
      if (o.stop_at_first_failure) break;
    }
  }
  if (!o.quiet) {
    std::printf("simulated %llu seeds (", static_cast<unsigned long long>(r.runs));
    bool first = true;
    for (const auto& [name, n] : r.per_profile) {
      std::printf("%s%s=%llu", first ? "" : " ", name.c_str(), static_cast<unsigned long long>(n));
      first = false;
    }
    std::printf(
        "; %llu on RocksDB): %zu failed; %llu acked writes, %llu linearizable reads, %llu "
        "elections, "
        "%llu crashes, %llu torn tails cut, %llu fsync failures, %llu snapshots "
        "installed, %llu leases granted and %llu expired, %llu disks lost and %llu "
        "recoveries finished, %llu bits flipped at rest and %llu damaged data dirs refused, "
        "%llu histories too large to check\n",
        static_cast<unsigned long long>(r.on_rocksdb), r.failures.size(),
        static_cast<unsigned long long>(r.acked_writes), static_cast<unsigned long long>(r.reads),
        static_cast<unsigned long long>(r.elections), static_cast<unsigned long long>(r.crashes),
        static_cast<unsigned long long>(r.torn), static_cast<unsigned long long>(r.fsync_failures),
        static_cast<unsigned long long>(r.snapshots),
        static_cast<unsigned long long>(r.leases_granted),
        static_cast<unsigned long long>(r.leases_expired),
        static_cast<unsigned long long>(r.disks_lost),
        static_cast<unsigned long long>(r.recoveries),
        static_cast<unsigned long long>(r.bits_flipped),
        static_cast<unsigned long long>(r.corruptions_detected),
        static_cast<unsigned long long>(r.inconclusive));
    uint64_t members = 0;
    std::printf("simulated over the real Member:");
    for (const auto& [name, n] : r.per_profile) {
      const auto it = r.per_profile_member.find(name);
      const uint64_t m = it == r.per_profile_member.end() ? 0 : it->second;
      members += m;
      std::printf(" %s=%llu/%llu", name.c_str(), static_cast<unsigned long long>(m),
                  static_cast<unsigned long long>(n));
    }
    std::printf(
        " (%llu of %llu seeds): %llu serializable reads, %llu watch events delivered, "
        "%llu compactions, %llu auth changes, %llu writes refused by auth\n",
        static_cast<unsigned long long>(members), static_cast<unsigned long long>(r.runs),
        static_cast<unsigned long long>(r.serializable_reads),
        static_cast<unsigned long long>(r.watch_events),
        static_cast<unsigned long long>(r.compactions),
        static_cast<unsigned long long>(r.auth_changes),
        static_cast<unsigned long long>(r.auth_refused));
  }
  return r;
}

}  // namespace chainfire::sim
