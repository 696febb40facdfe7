// Restore: writes a fresh data dir for one member of a static membership from a logical backup.
//
// Every live key keeps its value, create/mod revision and version; leases keep their granted
// TTL. History below the backup's revision is not carried: the restored revision and compact
// revision equal the backup's (plus `bump_revision`; the compact revision follows only with
// `mark_compacted`). The data dir is read back (key count and content hash against the
// backup's) before success; on any failure the data dir is removed.
// Thread-safety: thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "chainfire/backup/format.h"

namespace chainfire::backup {

struct RestoreOptions {
  std::string backup_path;
  std::string data_dir;
  // The new membership (cluster_id already mixed with the backup's hash) and this member.
  BackupHeader membership;
  std::string identity_record;  // raft_state "identity", as the daemon checks it at boot
  std::string cluster_salt;     // hex SHA-256 of the backup file
  int64_t bump_revision = 0;
  bool mark_compacted = false;
};

struct RestoreReport {
  BackupSummary summary;
  int64_t revision = 0;
  int64_t compact_revision = 0;
  uint64_t keys = 0;
  uint64_t leases = 0;
};

// Refuses, writing nothing: a damaged file or unknown format, a raft-snapshot file, a
// non-empty data dir, a negative bump, mark_compacted without a bump.
absl::StatusOr<RestoreReport> Restore(const RestoreOptions& options);

}  // namespace chainfire::backup
