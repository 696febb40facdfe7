#include "chainfire/storage/engine.h"

#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "chainfire/metrics/registry.h"
#include "chainfire/storage/table_check.h"
#include "chainfire/storage/wal_file_system.h"
#include "chainfire/storage/wal_scan.h"
#include "rocksdb/cache.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/options.h"
#include "rocksdb/slice_transform.h"
#include "rocksdb/table.h"
#include "spdlog/spdlog.h"

namespace chainfire::storage {

namespace {
const char* const kColumnNames[] = {"raft_log", "raft_state", "kv", "kv_revs", "meta"};

// One block cache for every column (uncompressed blocks of the table files).
constexpr size_t kBlockCacheBytes = 128 << 20;
constexpr uint64_t kMaxTotalWalBytes = 128 << 20;
constexpr size_t kBusyWriteBufferBytes = 16 << 20;

// The kv column's prefix of a key: the key without its 16-byte revision suffix, i.e. one user
// key's versions (see engine.h). Bloom filters over it let a lookup of one key skip every
// table file and memtable that holds no version of it; new keys never touch a table file.
class VersionKeyPrefix : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "chainfire.VersionKeyPrefix.v1"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), key.size() - kKvRevisionSuffixBytes);
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return key.size() >= kKvRevisionSuffixBytes;
  }
};

rocksdb::ColumnFamilyOptions ColumnOptions(Column c, const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions o;
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = cache;
  if (c == Column::kKv) {
    o.prefix_extractor = std::make_shared<VersionKeyPrefix>();
    o.memtable_prefix_bloom_size_ratio = 0.1;
    t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    t.whole_key_filtering = false;  // versions are found by prefix seeks, never by exact key
  }
  // Memtables: 16 MiB for the busy columns (RocksDB's default is 64 MiB; at 100k keys the
  // memtables were most of a member's memory, and smaller ones cost no measured throughput),
  // 8 MiB for the small ones.
  o.write_buffer_size =
      (c == Column::kRaftState || c == Column::kMeta) ? (8 << 20) : kBusyWriteBufferBytes;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  return o;
}
constexpr char kFormatKey[] = "format_version";

}  // namespace

absl::Status FromRocks(const rocksdb::Status& s, const std::string& context) {
  if (s.ok()) return absl::OkStatus();
  const std::string msg = absl::StrCat(context, ": ", s.ToString());
  if (s.IsNotFound()) return absl::NotFoundError(msg);
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(msg);
  return absl::InternalError(msg);
}

void PutBigEndian64(std::string* out, uint64_t v) {
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ||
                __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__);
  if constexpr (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__) v = __builtin_bswap64(v);
  char b[8];
  std::memcpy(b, &v, 8);
  out->append(b, 8);
}

uint64_t GetBigEndian64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  if constexpr (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__) v = __builtin_bswap64(v);
  return v;
}

std::string BigEndian64(uint64_t v) {
  std::string s;
  PutBigEndian64(&s, v);
  return s;
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Open(const std::string& dir, rocksdb::Env* env,
                                                     bool background_compaction) {
  bool existed = false;
  if (env == nullptr) {
    std::error_code ec;
    existed = std::filesystem::exists(std::filesystem::path(dir) / "CURRENT", ec);
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      return absl::InternalError(absl::StrCat("cannot create data dir ", dir, ": ", ec.message()));
    }
  } else {
    existed = env->FileExists(dir + "/CURRENT").ok();
  }

  rocksdb::DBOptions options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  options.paranoid_checks = true;
  // Replay stops only at a torn tail; corruption in the middle fails the open instead of
  // silently rolling back synced writes (RocksDB's default point-in-time recovery would).
  options.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  options.track_and_verify_wals_in_manifest = true;
  options.max_background_jobs = 2;
  options.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  options.keep_log_file_num = 3;
  // The WAL is kept until every column with data in it is flushed; the small raft_state and
  // meta columns rarely fill a memtable, so without a bound the WAL grows to RocksDB's default
  // (four times all write buffers, ~800 MiB) and a restart replays all of it (seconds at 1M
  // keys). Past this size RocksDB flushes the columns that hold the oldest WAL file.
  options.max_total_wal_size = kMaxTotalWalBytes;
  options.env = env != nullptr ? env : WalFileSystem::DefaultEnv();

  std::vector<rocksdb::ColumnFamilyDescriptor> columns;
  columns.emplace_back(rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions());
  const std::shared_ptr<rocksdb::Cache> cache = rocksdb::NewLRUCache(kBlockCacheBytes);
  for (int c = 0; c < static_cast<int>(std::size(kColumnNames)); ++c) {
    columns.emplace_back(kColumnNames[c], ColumnOptions(static_cast<Column>(c), cache));
  }
  for (rocksdb::ColumnFamilyDescriptor& c : columns) {
    c.options.disable_auto_compactions = !background_compaction;
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, columns, &handles, &raw);
  if (s.IsCorruption() && env == nullptr) {
    // A crash in the middle of a write leaves the newest WAL's last record half written, then
    // zeros (its space is preallocated): RocksDB reads a bad record there, not the end of the
    // file it reads after such a crash in a file that is not preallocated. Cut that record (it
    // was never synced) and open again; any other damage is refused below.
    auto cut = CutTornWalTail(dir);
    if (cut.ok() && cut->has_value()) {
      spdlog::warn(
          "data dir {}: cut a torn record (a write the crash interrupted, never synced) "
          "at the tail of {}, offset {}",
          dir, (*cut)->file, (*cut)->offset);
      handles.clear();
      s = rocksdb::DB::Open(options, dir, columns, &handles, &raw);
    }
  }
  if (!s.ok()) {
    std::string where;
    if (s.IsCorruption() && env == nullptr) {  // name the damaged WAL record, if it is one
      if (auto damage = ScanWalDir(dir); damage.ok()) {
        for (const WalDamage& d : *damage) {
          absl::StrAppend(&where, "; ", d.file, " at offset ", d.offset, ": ", d.what,
                          d.at_tail ? " (at the tail)" : " (valid records follow)");
        }
      }
    }
    return absl::DataLossError(absl::StrCat("cannot open data dir ", dir, ": ", s.ToString(), where,
                                            "; refusing to start on a damaged data dir"));
  }
  auto engine = std::unique_ptr<Engine>(new Engine());
  engine->dir_ = dir;
  engine->db_.reset(raw);
  // Table files' blocks against their checksums (RocksDB's message names the file and offset):
  // damaged state is refused at startup, not discovered by a read later. On the real file
  // system only files new or changed since they were last verified are read here; the rest
  // are read by CheckTablesInBackground (storage/table_check.h).
  absl::Status verified;
  if (env == nullptr) {
    const auto start = std::chrono::steady_clock::now();
    TableCheckReport report;
    verified = VerifyChangedTables(raw, dir, &report);
    engine->unchecked_tables_ = report.files_skipped;
    if (verified.ok() && report.files_verified > 0) {
      spdlog::info(
          "data dir {}: verified {} table files ({} MiB) in {} ms; {} unchanged since their "
          "last check",
          dir, report.files_verified, report.bytes_verified >> 20,
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                start)
              .count(),
          report.files_skipped);
    }
  } else {
    verified = FromRocks(raw->VerifyChecksum(), "verify");
  }
  if (!verified.ok()) {
    for (auto* h : handles) engine->db_->DestroyColumnFamilyHandle(h);
    engine->db_.reset();
    return absl::DataLossError(absl::StrCat("data dir ", dir, " is damaged: ", verified.message(),
                                            "; refusing to start on a damaged data dir"));
  }
  // handles[0] is the unused default column family; handles_[i] is Column(i).
  engine->db_->DestroyColumnFamilyHandle(handles[0]);
  engine->handles_.assign(handles.begin() + 1, handles.end());

  auto version = engine->Get(Column::kMeta, kFormatKey);
  if (version.ok()) {
    if (*version != std::to_string(kFormatVersion)) {
      return absl::FailedPreconditionError(
          absl::StrCat("data dir ", dir, " has format version ", *version,
                       "; this build reads format version ", kFormatVersion));
    }
  } else if (absl::IsNotFound(version.status())) {
    if (existed) {
      return absl::DataLossError(absl::StrCat("data dir ", dir,
                                              " holds a database without a ChainFire format "
                                              "version; refusing to use it"));
    }
    rocksdb::WriteBatch batch;
    batch.Put(engine->cf(Column::kMeta), kFormatKey, std::to_string(kFormatVersion));
    if (absl::Status ws = engine->Write(&batch, true); !ws.ok()) return ws;
    engine->created_ = true;
  } else {
    return version.status();
  }
  return engine;
}

void Engine::CheckTablesInBackground(std::function<void(const absl::Status&)> on_damage) {
  if (unchecked_tables_ == 0 || checker_) return;
  checker_ = std::make_unique<TableChecker>(db_.get(), std::move(on_damage));
}

Engine::~Engine() {
  checker_.reset();  // stops after the file being read
  for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
  handles_.clear();
  if (db_) db_->Close();
}

rocksdb::ReadOptions OrderedRead() {
  rocksdb::ReadOptions ro;
  ro.total_order_seek = true;
  return ro;
}

rocksdb::ReadOptions OneKeyRead() {
  rocksdb::ReadOptions ro;
  ro.prefix_same_as_start = true;
  return ro;
}

namespace {

// etcd's disk latency histograms: a synced write is the WAL's fsync, an unsynced one the
// backend's commit (the applied state; the log's fsync makes it durable).
metrics::Histogram* WalFsyncSeconds() {
  static metrics::Histogram* h =
      metrics::Default()
          .AddHistogram("etcd_disk_wal_fsync_duration_seconds",
                        "The latency distributions of fsync called by WAL.",
                        metrics::ExponentialBuckets(0.001, 2, 14))
          ->Get();
  return h;
}

metrics::Histogram* BackendCommitSeconds() {
  static metrics::Histogram* h =
      metrics::Default()
          .AddHistogram("etcd_disk_backend_commit_duration_seconds",
                        "The latency distributions of commit called by backend.",
                        metrics::ExponentialBuckets(0.001, 2, 14))
          ->Get();
  return h;
}

}  // namespace

absl::Status Engine::Write(rocksdb::WriteBatch* batch, bool sync, bool backend_commit) {
  // A synced write is written unsynced, then the WAL is synced (SyncWAL): RocksDB's write
  // queue is held only for the write itself, not for the fsync, so the apply path's unsynced
  // writes are not queued behind the log's fsync (with sync=true they were). The caller still
  // returns only after the fsync, and nothing reads the written keys before that.
  rocksdb::WriteOptions wo;
  if (!sync) {
    if (!metrics::TimingEnabled() || !backend_commit) {
      return FromRocks(db_->Write(wo, batch), "write");
    }
    const auto start = std::chrono::steady_clock::now();
    rocksdb::Status s = db_->Write(wo, batch);
    BackendCommitSeconds()->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    return FromRocks(s, "write");
  }
  if (rocksdb::Status s = db_->Write(wo, batch); !s.ok()) return FromRocks(s, "write");
  const auto start = std::chrono::steady_clock::now();
  rocksdb::Status s = db_->SyncWAL();
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (metrics::TimingEnabled()) WalFsyncSeconds()->Observe(took);
  if (took > 1.0) {  // etcd's warning, and its threshold
    spdlog::warn(
        "slow fdatasync: a synced write of the log took {:.3f}s, expected at most 1s "
        "(data dir {})",
        took, dir_);
  }
  return FromRocks(s, "sync wal");
}

absl::StatusOr<std::string> Engine::Get(Column c, const std::string& key) const {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cf(c), key, &value);
  if (!s.ok()) return FromRocks(s, absl::StrCat("get ", key));
  return value;
}

absl::Status Engine::FlushAll() {
  rocksdb::FlushOptions options;
  options.wait = true;
  return FromRocks(db_->Flush(options, handles_), "flush");
}

absl::Status Engine::CompactAll() {
  rocksdb::CompactRangeOptions options;
  options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  for (auto* h : handles_) {
    absl::Status s = FromRocks(db_->CompactRange(options, h, nullptr, nullptr), "compact");
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

uint64_t Engine::IntProperty(const std::string& name) const {
  uint64_t total = 0;
  for (rocksdb::ColumnFamilyHandle* h : handles_) {
    uint64_t v = 0;
    if (db_->GetIntProperty(h, name, &v)) total += v;
  }
  return total;
}

uint64_t Engine::WriteStallMicros() const {
  std::map<std::string, std::string> stats;
  if (!db_->GetMapProperty(rocksdb::DB::Properties::kDBStats, &stats)) return 0;
  auto it = stats.find("db.user_write_stall_micros");
  if (it == stats.end()) return 0;
  double v = 0;  // an integer today; parsed as a number in case RocksDB prints a fraction
  return absl::SimpleAtod(it->second, &v) && v > 0 ? static_cast<uint64_t>(v) : 0;
}

int64_t Engine::DiskSize() const {
  int64_t total = 0;
  std::error_code ec;
  for (const auto& f : std::filesystem::directory_iterator(dir_, ec)) {
    if (!f.is_regular_file(ec)) continue;
    uint64_t size = f.file_size(ec);
    if (ec) continue;
    // An open WAL's size counts its preallocated space: count what was written to it.
    if (auto appended = WalFileSystem::Default().AppendedBytes(f.path().string())) {
      size = std::min(size, *appended);
    }
    total += static_cast<int64_t>(size);
  }
  return total;
}

}  // namespace chainfire::storage
