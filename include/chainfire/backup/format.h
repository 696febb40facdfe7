// ChainFire's backup container (docs/backup-format.md): the format of `chainfire-backup`
// files, of Maintenance.Snapshot streams and of Raft snapshots sent to lagging followers.
//
//   "CFBACKUP" BE32(format version)
//   record*:   u8 type, BE32 length, payload (a proto/chainfire/backup.proto message)
//              header first, trailer last
//   zero padding up to a multiple of 512 bytes
//   SHA-256 of everything before it (32 bytes)
//
// So the length is a multiple of 512 plus 32 and the last 32 bytes are the SHA-256 of the rest,
// which is what `etcdctl snapshot save` checks of the stream it receives.
// Thread-safety: a BackupWriter is used from one thread; the free functions are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "chainfire/backup.pb.h"

namespace chainfire::backup {

inline constexpr std::string_view kMagic = "CFBACKUP";
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr std::string_view kKindBackup = "backup";
inline constexpr std::string_view kKindRaftSnapshot = "raft-snapshot";

enum class RecordType : uint8_t {
  kHeader = 1,
  kKey = 2,
  kLease = 3,
  kRaw = 4,
  kTrailer = 0x7f,
};

// Incremental SHA-256 (OpenSSL).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(std::string_view data);
  std::string Final();  // 32 raw bytes

 private:
  void* ctx_;
};

std::string HexString(std::string_view bytes);

// The content hash of the live keys (see BackupTrailer.content_hash): fed one key at a time,
// in key order, by both the writer and restore's read-back.
class ContentHasher {
 public:
  void Add(const BackupKey& key);
  std::string Final() { return sha_.Final(); }

 private:
  Sha256 sha_;
};

// Writes one container to `sink` (bytes in order; the sink's error aborts the write).
class BackupWriter {
 public:
  using Sink = std::function<absl::Status(std::string_view)>;
  explicit BackupWriter(Sink sink);

  absl::Status WriteHeader(const BackupHeader& header);  // first
  absl::Status AddKey(const BackupKey& key);             // in key order
  absl::Status AddLease(const BackupLease& lease);
  absl::Status AddRaw(const RawRecord& raw);
  // Writes the trailer, the padding and the checksum. Nothing may be added afterwards.
  absl::Status Finish();
  uint64_t size() const { return size_; }
  const BackupTrailer& trailer() const { return trailer_; }

 private:
  absl::Status Record(RecordType type, const google::protobuf::Message& msg);
  absl::Status Emit(std::string_view bytes);
  absl::Status Flush();

  Sink sink_;
  Sha256 sha_;
  ContentHasher content_;
  std::string buffer_;
  uint64_t size_ = 0;
  bool header_written_ = false;
  bool finished_ = false;
  BackupTrailer trailer_;
};

// What a verified file holds.
struct BackupSummary {
  BackupHeader header;
  BackupTrailer trailer;
  uint64_t size = 0;
  std::string sha256_hex;  // of the whole file
};

// Called for each record of a verified file, in order (header and trailer included).
using RecordVisitor = std::function<absl::Status(RecordType type, std::string_view payload)>;

// Checks a whole file: magic, format version, length, checksum, then every record (header
// first, trailer last, counts and content hash as the trailer says, zero padding). On damage:
// DataLoss (or FailedPrecondition for an unknown format version) naming what is wrong and at
// which byte offset. With a visitor, the records are then read a second time and handed to it
// (so a visitor never sees a damaged file).
absl::StatusOr<BackupSummary> VerifyFile(const std::string& path,
                                         const RecordVisitor& visitor = nullptr);

// inspect's JSON: format version, kind, revision, compact revision, key and lease counts,
// size, SHA-256 and the source membership.
std::string SummaryJson(const BackupSummary& summary);

}  // namespace chainfire::backup
