// Member: Raft snapshots as files (written for a peer, verified on receipt, installed).
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "chainfire/backup/state_dump.h"
#include "chainfire/common/check.h"
#include "chainfire/member/member.h"
#include "spdlog/spdlog.h"

namespace chainfire::member {

void Member::RestoreSnapshot(const raft::Snapshot& snapshot) {
  if (kv_->applied_index() >= snapshot.meta.index && snapshot.data.empty()) return;
  if (snapshot.data.empty()) {
    Fatal(absl::StrCat("the log was truncated at index ", snapshot.meta.index,
                       " but the store has applied only ", kv_->applied_index(),
                       "; the data dir is inconsistent. Restore this member from a backup."));
  }
  const std::string& path = snapshot.data;
  if (!std::filesystem::exists(path)) {
    Fatal(absl::StrCat("the snapshot file ", path, " for index ", snapshot.meta.index,
                       " is missing; restore this member from a backup"));
  }
  const int64_t start = now_ms_;
  absl::Status s = kv_->ReplaceState([&] { return backup::InstallRawState(engine_, path); });
  if (!s.ok()) {
    Fatal(absl::StrCat("installing the snapshot ", path, " failed: ", s.ToString()));
  }
  ReloadAfterInstall();
  // The install is durable (its last batch was synced): no redo will need the file.
  CleanSnapshotDir(std::string(), /*at_start=*/false);
  snapshots_installed_.fetch_add(1);
  spdlog::info(
      "member {:x}: installed the snapshot at index {} (state applied through {}, revision {}) "
      "at {} ms (started at {} ms)",
      options_.member_id, snapshot.meta.index, kv_->applied_index(), kv_->revision(), now_ms_,
      start);
}

void Member::ReloadAfterInstall() {
  auto auth_record = kv_->LoadAuthState();
  if (!auth_record.ok() || !auth_.Load(*auth_record).ok()) {
    Fatal(absl::StrCat("the installed snapshot's auth store is unreadable: ",
                       auth_record.ok() ? "corrupt record" : auth_record.status().ToString()));
  }
  // Tokens are this member's, not the snapshot's; none outlive auth being off.
  if (!auth_.enabled()) tokens_->Clear();
  {
    std::lock_guard<std::mutex> l(attributes_mu_);
    attributes_.clear();
    for (auto& [id, blob] : kv_->LoadMemberAttributes()) attributes_[id] = blob;
  }
  if (!options_.bugs.snapshot_forgets_leases) {
    lessor_->Clear();
    for (const auto& [id, ttl] : kv_->Leases()) lessor_->Grant(id, ttl * 1000, now_ms_);
  }
  hub_->Resync(kv_->revision());
}

void Member::CleanSnapshotDir(const std::string& keep, bool at_start) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(snapshot_dir(), ec)) {
    if (entry.path().string() == keep) continue;
    // While running, files being sent ("out-") and received (".part") belong to the transport.
    const std::string name = entry.path().filename().string();
    if (!at_start && (name.rfind("out-", 0) == 0 || entry.path().extension() == ".part")) continue;
    std::filesystem::remove(entry.path(), ec);
  }
}

absl::StatusOr<std::string> Member::WriteSnapshotForPeer(const raft::Message& m) {
  std::error_code ec;
  std::filesystem::create_directories(snapshot_dir(), ec);
  const std::string path = absl::StrCat(snapshot_dir(), "/out-", absl::Hex(m.to), "-",
                                        snapshot_files_.fetch_add(1), ".snap");
  const rocksdb::Snapshot* snap = engine_->db()->GetSnapshot();
  auto summary = backup::WriteBackupFile(path, [&](backup::BackupWriter* w) {
    return backup::WriteRawState(engine_, snap, options_.membership, w);
  });
  engine_->db()->ReleaseSnapshot(snap);
  if (!summary.ok()) return summary.status();
  spdlog::info("member {:x}: wrote a snapshot for {:x} (raft index {}, {} records, {} bytes)",
               options_.member_id, m.to, m.snapshot ? m.snapshot->meta.index : 0,
               summary->trailer.raw_records(), summary->size);
  return path;
}

absl::Status Member::VerifyReceivedSnapshot(const std::string& path) {
  auto summary = backup::VerifyFile(path);
  if (!summary.ok()) return summary.status();
  if (summary->header.kind() != backup::kKindRaftSnapshot) {
    return absl::InvalidArgumentError("not a raft snapshot");
  }
  return absl::OkStatus();
}

}  // namespace chainfire::member
