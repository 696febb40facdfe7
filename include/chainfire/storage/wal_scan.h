// Locates damage in RocksDB write-ahead log files, so a member that refuses to start on a
// corrupt data dir can say which file and which byte offset are bad (RocksDB's own message
// says only "checksum mismatch").
//
// The WAL format (RocksDB's log_format.h): 32 KiB blocks of records, each a 7-byte header
// (masked CRC32C of type and payload, little-endian 16-bit length, type) and the payload;
// block tails shorter than a header are zero. Recyclable records (11-byte header with a log
// number) are understood too.
// Thread-safety: plain functions over files nobody writes meanwhile.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace chainfire::storage {

struct WalDamage {
  std::string file;  // path of the WAL file
  uint64_t offset;   // byte offset of the first bad record
  std::string what;  // e.g. "checksum mismatch"
  bool at_tail;      // nothing valid follows it (what a torn write leaves)
  // At the tail, and some 512-byte sector of the bad record reads as zeros: a write the
  // crash interrupted in preallocated space (sectors are written whole; what was never written
  // reads as zeros), as etcd's WAL tells a torn entry from a damaged one.
  bool torn = false;
};

// The first damaged record of one WAL file, or nullopt when every record checks out.
absl::StatusOr<std::optional<WalDamage>> ScanWalFile(const std::string& path);
// The first damaged record of every "*.log" WAL file of `dir`, oldest file first.
absl::StatusOr<std::vector<WalDamage>> ScanWalDir(const std::string& dir);

// When the newest WAL file of `dir` ends in a torn record (see WalDamage::torn), cuts the file
// there and returns what was cut; nullopt when there is none (any other damage is left for the
// caller to refuse). A torn record was never synced (a sync returns only once every sector of
// it is on disk), so it was never acknowledged: cutting it loses nothing a client was told of.
absl::StatusOr<std::optional<WalDamage>> CutTornWalTail(const std::string& dir);

// CRC32C (Castagnoli) of `data`, as RocksDB computes it (before masking).
uint32_t Crc32c(const char* data, size_t n, uint32_t crc = 0);

}  // namespace chainfire::storage
