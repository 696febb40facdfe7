#include "chainfire/backup/state_dump.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "chainfire/mvcc/key_encoding.h"
#include "chainfire/mvcc/layout.h"
#include "chainfire/storage/raft_format.h"
#include "rocksdb/write_batch.h"

namespace chainfire::backup {

using storage::Column;

namespace {

constexpr Column kStateColumns[] = {Column::kKv, Column::kKvRevisions, Column::kMeta};

int64_t ReadMeta64(storage::Engine* engine, const rocksdb::Snapshot* snap, const char* key) {
  rocksdb::ReadOptions ro;
  ro.snapshot = snap;
  std::string v;
  if (!engine->db()->Get(ro, engine->cf(Column::kMeta), key, &v).ok() || v.size() != 8) return 0;
  return static_cast<int64_t>(storage::GetBigEndian64(v.data()));
}

std::unique_ptr<rocksdb::Iterator> Iter(storage::Engine* engine, const rocksdb::Snapshot* snap,
                                        Column c) {
  rocksdb::ReadOptions ro;
  ro.snapshot = snap;
  ro.fill_cache = false;
  ro.total_order_seek = true;
  return std::unique_ptr<rocksdb::Iterator>(engine->db()->NewIterator(ro, engine->cf(c)));
}

absl::Status SyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) return absl::InternalError(absl::StrCat("open ", path, " for fsync failed"));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return absl::InternalError(absl::StrCat("fsync ", path, " failed"));
  return absl::OkStatus();
}

}  // namespace

absl::Status ForEachLiveKey(storage::Engine* engine, const rocksdb::Snapshot* snapshot,
                            const std::function<absl::Status(const BackupKey&)>& fn) {
  auto it = Iter(engine, snapshot, Column::kKv);
  std::string key;
  mvcc::Revision rev;
  for (it->SeekToFirst(); it->Valid();) {
    if (!mvcc::DecodeVersionKey(it->key().ToStringView(), &key, &rev)) {
      return absl::DataLossError("corrupt mvcc key in the kv column");
    }
    // Versions sort newest first: the first one of a key is its latest.
    mvcc::layout::ValueRecord rec;
    if (!mvcc::layout::DecodeValueRecord(it->value().ToStringView(), &rec)) {
      return absl::DataLossError("corrupt mvcc record in the kv column");
    }
    if (!rec.tombstone) {
      BackupKey k;
      k.set_key(key);
      k.set_value(std::string(rec.value));
      k.set_create_revision(rec.create_revision);
      k.set_mod_revision(rev.main);
      k.set_mod_sub(rev.sub);
      k.set_version(rec.version);
      k.set_lease(rec.lease);
      if (absl::Status s = fn(k); !s.ok()) return s;
    }
    it->Seek(mvcc::KeyPrefixEnd(key));
  }
  if (!it->status().ok()) return storage::FromRocks(it->status(), "reading the kv column");
  return absl::OkStatus();
}

absl::Status WriteLogicalBackup(storage::Engine* engine, const rocksdb::Snapshot* snapshot,
                                BackupHeader header, BackupWriter* writer) {
  header.set_kind(std::string(kKindBackup));
  header.set_revision(ReadMeta64(engine, snapshot, mvcc::layout::kRevisionKey));
  header.set_compact_revision(ReadMeta64(engine, snapshot, mvcc::layout::kCompactKey));
  header.set_applied_index(
      static_cast<uint64_t>(ReadMeta64(engine, snapshot, mvcc::layout::kAppliedKey)));
  header.set_created_unix_seconds(static_cast<int64_t>(std::time(nullptr)));
  if (header.revision() == 0) header.set_revision(1);  // an empty store is at revision 1
  if (absl::Status s = writer->WriteHeader(header); !s.ok()) return s;
  absl::Status s =
      ForEachLiveKey(engine, snapshot, [&](const BackupKey& k) { return writer->AddKey(k); });
  if (!s.ok()) return s;
  auto it = Iter(engine, snapshot, Column::kMeta);
  const std::string prefix = mvcc::layout::kLeasePrefix;
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    int64_t id = 0, ttl = 0;
    if (!mvcc::layout::DecodeLease(it->key().ToStringView(), it->value().ToStringView(), &id,
                                   &ttl)) {
      continue;
    }
    BackupLease l;
    l.set_id(id);
    l.set_ttl(ttl);
    if (s = writer->AddLease(l); !s.ok()) return s;
  }
  if (!it->status().ok()) return storage::FromRocks(it->status(), "reading leases");
  // The auth store (users, roles, whether auth is on) as one raw record: a restored cluster
  // keeps it. Tokens are not state: none survives.
  std::string auth;
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  rocksdb::Status got =
      engine->db()->Get(ro, engine->cf(Column::kMeta), mvcc::layout::kAuthKey, &auth);
  if (got.ok()) {
    RawRecord r;
    r.set_column(static_cast<uint32_t>(Column::kMeta));
    r.set_key(mvcc::layout::kAuthKey);
    r.set_value(auth);
    if (s = writer->AddRaw(r); !s.ok()) return s;
  } else if (!got.IsNotFound()) {
    return storage::FromRocks(got, "reading the auth store");
  }
  return writer->Finish();
}

absl::Status WriteRawState(storage::Engine* engine, const rocksdb::Snapshot* snapshot,
                           BackupHeader header, BackupWriter* writer) {
  header.set_kind(std::string(kKindRaftSnapshot));
  header.set_revision(ReadMeta64(engine, snapshot, mvcc::layout::kRevisionKey));
  header.set_compact_revision(ReadMeta64(engine, snapshot, mvcc::layout::kCompactKey));
  header.set_applied_index(
      static_cast<uint64_t>(ReadMeta64(engine, snapshot, mvcc::layout::kAppliedKey)));
  header.set_created_unix_seconds(static_cast<int64_t>(std::time(nullptr)));
  if (absl::Status s = writer->WriteHeader(header); !s.ok()) return s;
  for (Column c : kStateColumns) {
    auto it = Iter(engine, snapshot, c);
    RawRecord r;
    r.set_column(static_cast<uint32_t>(c));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      r.set_key(it->key().ToString());
      r.set_value(it->value().ToString());
      if (absl::Status s = writer->AddRaw(r); !s.ok()) return s;
    }
    if (!it->status().ok()) return storage::FromRocks(it->status(), "reading state");
  }
  return writer->Finish();
}

absl::StatusOr<BackupSummary> WriteBackupFile(
    const std::string& path, const std::function<absl::Status(BackupWriter*)>& body) {
  const std::string tmp = path + ".part";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return absl::InternalError(absl::StrCat("cannot create ", tmp));
  BackupWriter writer([f, &tmp](std::string_view bytes) {
    if (std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) {
      return absl::InternalError(absl::StrCat("write to ", tmp, " failed"));
    }
    return absl::OkStatus();
  });
  absl::Status s = body(&writer);
  if (std::fflush(f) != 0 && s.ok()) s = absl::InternalError("flush failed");
  if (s.ok() && ::fsync(fileno(f)) != 0) s = absl::InternalError("fsync failed");
  std::fclose(f);
  std::error_code ec;
  if (s.ok()) {
    std::filesystem::rename(tmp, path, ec);
    if (ec) s = absl::InternalError(absl::StrCat("rename to ", path, ": ", ec.message()));
  }
  if (!s.ok()) {
    std::filesystem::remove(tmp, ec);
    return s;
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  if (absl::Status d = SyncPath(dir, O_RDONLY | O_DIRECTORY); !d.ok()) return d;
  BackupSummary summary;
  summary.size = writer.size();
  summary.trailer = writer.trailer();
  return summary;
}

absl::Status InstallRawState(storage::Engine* engine, const std::string& path,
                             const InstallOptions& options) {
  // Verify the whole file before deleting anything.
  auto verified = VerifyFile(path);
  if (!verified.ok()) return verified.status();
  if (verified->header.kind() != kKindRaftSnapshot) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is a '", verified->header.kind(), "' file, not a raft snapshot"));
  }
  rocksdb::WriteBatch batch;
  for (Column c : kStateColumns) {
    auto it = Iter(engine, nullptr, c);
    it->SeekToLast();
    if (!it->Valid()) continue;
    std::string end = it->key().ToString();
    end.push_back('\0');
    batch.DeleteRange(engine->cf(c), "", end);
  }
  auto flush = [&](bool sync) -> absl::Status {
    absl::Status s = engine->Write(&batch, sync);
    batch.Clear();
    return s;
  };
  std::string applied;
  auto visited = VerifyFile(path, [&](RecordType type, std::string_view payload) -> absl::Status {
    if (type != RecordType::kRaw) return absl::OkStatus();
    RawRecord r;
    r.ParseFromArray(payload.data(), static_cast<int>(payload.size()));
    if (r.column() != static_cast<uint32_t>(Column::kKv) &&
        r.column() != static_cast<uint32_t>(Column::kKvRevisions) &&
        r.column() != static_cast<uint32_t>(Column::kMeta)) {
      return absl::DataLossError(absl::StrCat("raft snapshot names column ", r.column()));
    }
    if (r.column() == static_cast<uint32_t>(Column::kMeta) &&
        r.key() == mvcc::layout::kAppliedKey) {
      applied = r.value();  // written last: until then the store reads as not installed
      return absl::OkStatus();
    }
    batch.Put(engine->cf(static_cast<Column>(r.column())), r.key(), r.value());
    return batch.GetDataSize() >= options.batch_bytes ? flush(false) : absl::OkStatus();
  });
  if (!visited.ok()) return visited.status();
  if (options.testing_crash_before_last_batch) {
    if (absl::Status s = engine->Write(&batch, true); !s.ok()) return s;  // all but the index
    return absl::AbortedError("testing: crashed before the last batch of the install");
  }
  if (!applied.empty()) {
    batch.Put(engine->cf(Column::kMeta), mvcc::layout::kAppliedKey, applied);
    batch.Put(engine->cf(Column::kMeta), mvcc::layout::kInstalledAppliedKey, applied);
  }
  return flush(true);
}

absl::StatusOr<BackupHeader> LoadMembership(storage::Engine* engine) {
  auto raw = engine->Get(Column::kRaftState, storage::raft_format::kMembershipKey);
  if (!raw.ok()) return raw.status();
  BackupHeader h;
  if (!h.ParseFromString(*raw)) return absl::DataLossError("corrupt membership record");
  return h;
}

}  // namespace chainfire::backup
