// Moving a member's state in and out of backup containers (format.h).
//
// A logical backup ("backup") holds the live keys at one revision and the leases: what
// chainfire-backup restores. A raft snapshot ("raft-snapshot") holds every record of the
// kv, kv_revs and meta columns (history included), so a follower that installs it is
// identical to the leader at the snapshot's applied index.
// Thread-safety: the functions are thread-safe as the Engine is; a caller must not install
// into an engine whose KvStore is applying.
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "chainfire/backup/format.h"
#include "chainfire/storage/engine.h"

namespace chainfire::backup {

// Calls `fn` for each live key at `snapshot` (nullptr: the latest state), in key order.
absl::Status ForEachLiveKey(storage::Engine* engine, const rocksdb::Snapshot* snapshot,
                            const std::function<absl::Status(const BackupKey&)>& fn);

// Writes a logical backup of the state at `snapshot`. `header` gives the kind-independent
// fields (cluster, members); revision and compact revision are read at the snapshot.
absl::Status WriteLogicalBackup(storage::Engine* engine, const rocksdb::Snapshot* snapshot,
                                BackupHeader header, BackupWriter* writer);
// Writes every record of the kv, kv_revs and meta columns at `snapshot`.
absl::Status WriteRawState(storage::Engine* engine, const rocksdb::Snapshot* snapshot,
                           BackupHeader header, BackupWriter* writer);

// Writes a container to `path` atomically: a temporary file, fsync, rename, fsync of the
// directory. On failure the temporary file is removed and `path` is untouched.
absl::StatusOr<BackupSummary> WriteBackupFile(
    const std::string& path, const std::function<absl::Status(BackupWriter*)>& body);

// Replaces the kv, kv_revs and meta columns with the records of a raft-snapshot file (which
// it verifies first). Several WriteBatches, the last one synced. The applied index is written
// in the last batch only (the first one deletes it), so after a crash in the middle the store
// reads as applied 0, below the snapshot, and the caller redoes the install from the same
// file before using the store (NodeHost does at startup): the old state or the new, never a
// mix that looks installed.
struct InstallOptions {
  size_t batch_bytes = 4 << 20;  // bytes of records per WriteBatch
  // TEST ONLY: stop (as a crash would) just before the last batch, every other one written.
  bool testing_crash_before_last_batch = false;
};
absl::Status InstallRawState(storage::Engine* engine, const std::string& path,
                             const InstallOptions& options = InstallOptions());

// The membership record a member keeps in raft_state (for offline backups); NotFound if the
// data dir predates it.
absl::StatusOr<BackupHeader> LoadMembership(storage::Engine* engine);

}  // namespace chainfire::backup
