#include "chainfire/storage/wal_scan.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "chainfire/storage/wal_file_system.h"

namespace chainfire::storage {
namespace {

constexpr size_t kBlockSize = 32768;
constexpr size_t kHeaderSize = 7;
constexpr size_t kRecyclableHeaderSize = 11;
constexpr uint32_t kMaskDelta = 0xa282ead8u;
constexpr uint8_t kMaxKnownType = 10;  // up to RocksDB's user-defined timestamp record types
constexpr size_t kSectorSize = 512;

// Whether some sector's share of data[from, to) is all zeros.
bool HasZeroSector(const std::string& data, size_t from, size_t to) {
  for (size_t sector = from / kSectorSize * kSectorSize; sector < to; sector += kSectorSize) {
    const size_t a = std::max(sector, from);
    const size_t b = std::min(sector + kSectorSize, to);
    if (std::all_of(data.begin() + static_cast<std::ptrdiff_t>(a),
                    data.begin() + static_cast<std::ptrdiff_t>(b), [](char c) { return c == 0; })) {
      return true;
    }
  }
  return false;
}

const std::array<uint32_t, 256>& Table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

uint32_t Unmask(uint32_t masked) {
  const uint32_t rot = masked - kMaskDelta;
  return (rot >> 17) | (rot << 15);
}

uint32_t LittleEndian32(const char* p) {
  return static_cast<uint32_t>(static_cast<uint8_t>(p[0])) |
         static_cast<uint32_t>(static_cast<uint8_t>(p[1])) << 8 |
         static_cast<uint32_t>(static_cast<uint8_t>(p[2])) << 16 |
         static_cast<uint32_t>(static_cast<uint8_t>(p[3])) << 24;
}

}  // namespace

uint32_t Crc32c(const char* data, size_t n, uint32_t crc) {
  const auto& t = Table();
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = t[(crc ^ static_cast<uint8_t>(data[i])) & 0xff] ^ (crc >> 8);
  return ~crc;
}

absl::StatusOr<std::optional<WalDamage>> ScanWalFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::optional<WalDamage> damage;
  size_t pos = 0;
  while (pos < data.size()) {
    const size_t block_left = kBlockSize - pos % kBlockSize;
    if (block_left < kHeaderSize) {  // trailer: must be zero
      pos += block_left;
      continue;
    }
    const char* h = data.data() + pos;
    if (data.size() - pos < kHeaderSize) {
      if (!damage) damage = WalDamage{path, pos, "truncated record header", true};
      break;
    }
    const uint32_t length = static_cast<uint8_t>(h[4]) | static_cast<uint8_t>(h[5]) << 8;
    const uint8_t type = static_cast<uint8_t>(h[6]);
    if (type == 0 && length == 0 && LittleEndian32(h) == 0) {
      // Zero-filled space (preallocated, never written): the end of the log.
      const bool rest_zero = std::all_of(data.begin() + static_cast<std::ptrdiff_t>(pos),
                                         data.end(), [](char c) { return c == 0; });
      if (!rest_zero && !damage) damage = WalDamage{path, pos, "zeroed record", false};
      break;
    }
    const bool recyclable = type >= 5 && type <= 8;
    const size_t header = recyclable ? kRecyclableHeaderSize : kHeaderSize;
    std::string what;
    bool length_fits = header + length <= block_left && pos + header + length <= data.size();
    if (type > kMaxKnownType) {
      what = absl::StrCat("unknown record type ", type);
    } else if (!length_fits) {
      what = absl::StrCat("record length ", length, " runs past its block or the file");
    } else {
      const uint32_t expected = Unmask(LittleEndian32(h));
      const uint32_t actual = Crc32c(h + 6, header - 6 + length);
      if (expected != actual) what = "checksum mismatch";
    }
    if (!what.empty()) {
      if (damage) {  // a second bad record: the first one was not a torn tail
        damage->at_tail = false;
        break;
      }
      damage = WalDamage{path, pos, what, true};
      const size_t record_end =
          length_fits ? pos + header + length : std::min(pos + block_left, data.size());
      damage->torn = HasZeroSector(data, pos, record_end);
      // Look for valid records after it: past the record if its length is plausible (damage
      // inside the payload), else from the next block.
      pos += length_fits ? header + length : block_left;
      continue;
    }
    if (damage) {  // a valid record after the damage: damage in the middle of the log
      damage->at_tail = false;
      break;
    }
    pos += header + length;
  }
  if (damage && !damage->at_tail) damage->torn = false;
  return damage;
}

namespace {
// The WAL files of `dir`, oldest first (RocksDB numbers them with zero padding).
absl::StatusOr<std::vector<std::string>> WalFiles(const std::string& dir) {
  std::vector<std::string> wals;
  std::error_code ec;
  for (const auto& f : std::filesystem::directory_iterator(dir, ec)) {
    if (WalFileSystem::IsWalFile(f.path().string())) wals.push_back(f.path().string());
  }
  if (ec) return absl::NotFoundError(absl::StrCat("cannot list ", dir, ": ", ec.message()));
  std::sort(wals.begin(), wals.end());
  return wals;
}
}  // namespace

absl::StatusOr<std::vector<WalDamage>> ScanWalDir(const std::string& dir) {
  auto wals = WalFiles(dir);
  if (!wals.ok()) return wals.status();
  std::vector<WalDamage> out;
  for (const std::string& w : *wals) {
    auto d = ScanWalFile(w);
    if (!d.ok()) return d.status();
    if (*d) out.push_back(**d);
  }
  return out;
}

absl::StatusOr<std::optional<WalDamage>> CutTornWalTail(const std::string& dir) {
  auto wals = WalFiles(dir);
  if (!wals.ok()) return wals.status();
  if (wals->empty()) return std::nullopt;
  auto damage = ScanWalFile(wals->back());  // only the newest can hold a write in progress
  if (!damage.ok()) return damage.status();
  if (!*damage || !(*damage)->at_tail || !(*damage)->torn) return std::nullopt;
  std::error_code ec;
  std::filesystem::resize_file((*damage)->file, (*damage)->offset, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot cut ", (*damage)->file, ": ", ec.message()));
  }
  return *damage;
}

}  // namespace chainfire::storage
