#include "chainfire/backup/restore.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "chainfire/backup/state_dump.h"
#include "chainfire/mvcc/key_encoding.h"
#include "chainfire/mvcc/layout.h"
#include "chainfire/storage/engine.h"
#include "chainfire/storage/raft_format.h"
#include "chainfire/storage/raft_log_store.h"
#include "rocksdb/write_batch.h"

namespace chainfire::backup {

namespace fs = std::filesystem;
using storage::BigEndian64;
using storage::Column;

namespace {

constexpr size_t kBatchBytes = 4 << 20;
constexpr uint64_t kRestoredIndex = 1;
constexpr uint64_t kRestoredTerm = 1;

absl::StatusOr<RestoreReport> WriteDataDir(const RestoreOptions& o, const BackupSummary& summary) {
  auto engine = storage::Engine::Open(o.data_dir);
  if (!engine.ok()) return engine.status();
  storage::Engine* e = engine->get();
  const int64_t revision = summary.header.revision() + o.bump_revision;
  const int64_t compact = o.mark_compacted ? revision : summary.header.revision();
  rocksdb::WriteBatch batch;
  auto flush = [&](bool sync) {
    absl::Status s = e->Write(&batch, sync);
    batch.Clear();
    return s;
  };
  auto visited = VerifyFile(o.backup_path, [&](RecordType type, std::string_view payload) {
    if (type == RecordType::kKey) {
      BackupKey k;
      k.ParseFromArray(payload.data(), static_cast<int>(payload.size()));
      const mvcc::Revision rev{k.mod_revision(), k.mod_sub()};
      batch.Put(e->cf(Column::kKv), mvcc::VersionKey(k.key(), rev),
                mvcc::layout::EncodeValueRecord(false, k.create_revision(), k.version(), k.lease(),
                                                k.value()));
      batch.Put(e->cf(Column::kKvRevisions), mvcc::RevisionKey(rev), k.key());
      if (k.lease() != 0) {
        batch.Put(e->cf(Column::kMeta), mvcc::layout::LeaseKeyIndex(k.lease(), k.key()), "");
      }
    } else if (type == RecordType::kLease) {
      BackupLease l;
      l.ParseFromArray(payload.data(), static_cast<int>(payload.size()));
      batch.Put(e->cf(Column::kMeta), mvcc::layout::LeaseKey(l.id()), BigEndian64(l.ttl()));
    } else if (type == RecordType::kRaw) {
      // A logical backup carries one raw record: the auth store. Nothing else is taken.
      RawRecord r;
      r.ParseFromArray(payload.data(), static_cast<int>(payload.size()));
      if (r.column() == static_cast<uint32_t>(Column::kMeta) && r.key() == mvcc::layout::kAuthKey) {
        batch.Put(e->cf(Column::kMeta), mvcc::layout::kAuthKey, r.value());
      }
    }
    return batch.GetDataSize() >= kBatchBytes ? flush(false) : absl::OkStatus();
  });
  if (!visited.ok()) return visited.status();
  batch.Put(e->cf(Column::kMeta), mvcc::layout::kRevisionKey, BigEndian64(revision));
  batch.Put(e->cf(Column::kMeta), mvcc::layout::kCompactKey, BigEndian64(compact));
  batch.Put(e->cf(Column::kMeta), mvcc::layout::kCompactDoneKey, BigEndian64(compact));
  // The restored state is that of a snapshot at index 1, term 1 (identical on every restored
  // member): the log starts after it, so a member rebuilt from the others gets the state by a
  // snapshot, never by replaying a log that does not contain it.
  batch.Put(e->cf(Column::kMeta), mvcc::layout::kAppliedKey, BigEndian64(kRestoredIndex));
  storage::RaftLogStore::AddInitialSnapshot(e, &batch, kRestoredIndex, kRestoredTerm);
  storage::raft_format::PutIdentity(e, &batch, o.identity_record, o.membership.SerializeAsString());
  storage::raft_format::PutClusterSalt(e, &batch, o.cluster_salt);
  if (absl::Status s = flush(true); !s.ok()) return s;

  // Read back what was written, through the same scan a backup uses.
  RestoreReport report;
  report.summary = summary;
  ContentHasher hasher;
  absl::Status s = ForEachLiveKey(e, nullptr, [&](const BackupKey& k) {
    hasher.Add(k);
    ++report.keys;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (report.keys != summary.trailer.keys() || hasher.Final() != summary.trailer.content_hash()) {
    return absl::DataLossError(absl::StrCat("read-back mismatch: wrote ", summary.trailer.keys(),
                                            " keys, read back ", report.keys,
                                            " (or their content hash differs)"));
  }
  report.revision = revision;
  report.compact_revision = compact;
  report.leases = summary.trailer.leases();
  return report;
}

}  // namespace

absl::StatusOr<RestoreReport> Restore(const RestoreOptions& o) {
  if (o.bump_revision < 0) return absl::InvalidArgumentError("--bump-revision must be >= 0");
  if (o.mark_compacted && o.bump_revision == 0) {
    return absl::InvalidArgumentError("--mark-compacted requires --bump-revision");
  }
  auto summary = VerifyFile(o.backup_path);
  if (!summary.ok()) return summary.status();
  if (summary->header.kind() != kKindBackup) {
    return absl::InvalidArgumentError(
        absl::StrCat(o.backup_path, " is a '", summary->header.kind(), "' file, not a backup"));
  }
  std::error_code ec;
  if (fs::exists(o.data_dir, ec) && !fs::is_empty(o.data_dir, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("data dir ", o.data_dir, " is not empty; restore writes a fresh one"));
  }
  const bool existed = fs::exists(o.data_dir, ec);
  auto report = WriteDataDir(o, *summary);
  if (!report.ok()) {
    // Never leave a half-written data dir behind.
    if (existed) {
      for (const auto& entry : fs::directory_iterator(o.data_dir, ec)) fs::remove_all(entry, ec);
    } else {
      fs::remove_all(o.data_dir, ec);
    }
  }
  return report;
}

}  // namespace chainfire::backup
