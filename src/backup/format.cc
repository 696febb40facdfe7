#include "chainfire/backup/format.h"

#include <openssl/evp.h>

#include <cstdio>
#include <fstream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "chainfire/common/check.h"
#include "nlohmann/json.hpp"

namespace chainfire::backup {
namespace {

constexpr size_t kBlock = 512;
constexpr size_t kShaSize = 32;
constexpr size_t kFlushAt = 64 << 10;
constexpr size_t kPrefix = 12;             // magic + version
constexpr uint32_t kMaxRecord = 1u << 30;  // a key-value is bounded by the request limit

void PutBe32(std::string* out, uint32_t v) {
  for (int i = 3; i >= 0; --i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutBe64(std::string* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint32_t GetBe32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

absl::Status Damaged(uint64_t offset, std::string_view what) {
  return absl::DataLossError(
      absl::StrCat("damaged backup at byte ", offset, ": ", std::string(what)));
}

// Sequential reads of a file with the offset reported in errors.
class FileInput {
 public:
  explicit FileInput(const std::string& path) : in_(path, std::ios::binary) {}
  bool ok() const { return in_.is_open(); }
  bool Read(size_t n, std::string* out) {
    out->resize(n);
    in_.read(out->data(), static_cast<std::streamsize>(n));
    if (static_cast<size_t>(in_.gcount()) != n) return false;
    offset_ += n;
    return true;
  }
  uint64_t offset() const { return offset_; }

 private:
  std::ifstream in_;
  uint64_t offset_ = 0;
};

}  // namespace

Sha256::Sha256() {
  ctx_ = EVP_MD_CTX_new();
  CF_CHECK(ctx_ != nullptr &&
           EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr) == 1)
      << "SHA-256 unavailable";
}
Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }
void Sha256::Update(std::string_view data) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data.data(), data.size());
}
std::string Sha256::Final() {
  std::string out(kShaSize, '\0');
  unsigned int n = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), reinterpret_cast<unsigned char*>(out.data()),
                     &n);
  return out;
}

std::string HexString(std::string_view bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

void ContentHasher::Add(const BackupKey& k) {
  std::string buf;
  PutBe32(&buf, static_cast<uint32_t>(k.key().size()));
  buf += k.key();
  PutBe32(&buf, static_cast<uint32_t>(k.value().size()));
  sha_.Update(buf);
  sha_.Update(k.value());
  buf.clear();
  for (int64_t v : {k.create_revision(), k.mod_revision(), k.mod_sub(), k.version(), k.lease()}) {
    PutBe64(&buf, static_cast<uint64_t>(v));
  }
  sha_.Update(buf);
}

BackupWriter::BackupWriter(Sink sink) : sink_(std::move(sink)) {
  buffer_.append(kMagic);
  PutBe32(&buffer_, kFormatVersion);
}

absl::Status BackupWriter::Emit(std::string_view bytes) {
  buffer_.append(bytes);
  return buffer_.size() >= kFlushAt ? Flush() : absl::OkStatus();
}

absl::Status BackupWriter::Flush() {
  if (buffer_.empty()) return absl::OkStatus();
  sha_.Update(buffer_);
  size_ += buffer_.size();
  absl::Status s = sink_(buffer_);
  buffer_.clear();
  return s;
}

absl::Status BackupWriter::Record(RecordType type, const google::protobuf::Message& msg) {
  if (finished_) return absl::FailedPreconditionError("backup already finished");
  if (!header_written_ && type != RecordType::kHeader) {
    return absl::FailedPreconditionError("backup header must come first");
  }
  std::string frame;
  frame.push_back(static_cast<char>(type));
  const std::string payload = msg.SerializeAsString();
  PutBe32(&frame, static_cast<uint32_t>(payload.size()));
  frame += payload;
  return Emit(frame);
}

absl::Status BackupWriter::WriteHeader(const BackupHeader& header) {
  if (header_written_) return absl::FailedPreconditionError("backup header written twice");
  header_written_ = true;
  return Record(RecordType::kHeader, header);
}

absl::Status BackupWriter::AddKey(const BackupKey& key) {
  content_.Add(key);
  trailer_.set_keys(trailer_.keys() + 1);
  return Record(RecordType::kKey, key);
}

absl::Status BackupWriter::AddLease(const BackupLease& lease) {
  trailer_.set_leases(trailer_.leases() + 1);
  return Record(RecordType::kLease, lease);
}

absl::Status BackupWriter::AddRaw(const RawRecord& raw) {
  trailer_.set_raw_records(trailer_.raw_records() + 1);
  return Record(RecordType::kRaw, raw);
}

absl::Status BackupWriter::Finish() {
  trailer_.set_content_hash(content_.Final());
  if (absl::Status s = Record(RecordType::kTrailer, trailer_); !s.ok()) return s;
  finished_ = true;
  const uint64_t total = size_ + buffer_.size();
  buffer_.append((kBlock - total % kBlock) % kBlock, '\0');
  if (absl::Status s = Flush(); !s.ok()) return s;
  const std::string sum = sha_.Final();
  size_ += sum.size();
  return sink_(sum);
}

absl::StatusOr<BackupSummary> VerifyFile(const std::string& path, const RecordVisitor& visitor) {
  FileInput in(path);
  if (!in.ok()) return absl::NotFoundError(absl::StrCat("cannot open backup file ", path));
  std::string prefix;
  if (!in.Read(kPrefix, &prefix)) return Damaged(0, "file too short for a backup header");
  if (std::string_view(prefix).substr(0, kMagic.size()) != kMagic) {
    return Damaged(0, "not a ChainFire backup (bad magic)");
  }
  const uint32_t version = GetBe32(prefix.data() + kMagic.size());
  if (version != kFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat("unknown backup format version ", version,
                                                      " (this build reads version ", kFormatVersion,
                                                      ")"));
  }
  std::error_code ec;
  BackupSummary summary;
  {
    std::ifstream sizer(path, std::ios::binary | std::ios::ate);
    summary.size = static_cast<uint64_t>(sizer.tellg());
  }
  if (summary.size < kBlock + kShaSize || summary.size % kBlock != kShaSize) {
    return Damaged(summary.size, absl::StrCat("length ", summary.size,
                                              " is not a multiple of 512 plus 32 (truncated?)"));
  }
  // Pass 1: the checksum.
  {
    FileInput all(path);
    Sha256 sha, whole;
    std::string chunk;
    uint64_t left = summary.size - kShaSize;
    while (left > 0) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(left, 1 << 20));
      if (!all.Read(n, &chunk)) return Damaged(all.offset(), "short read");
      sha.Update(chunk);
      whole.Update(chunk);
      left -= n;
    }
    std::string stored;
    if (!all.Read(kShaSize, &stored)) return Damaged(all.offset(), "short read");
    if (sha.Final() != stored) {
      return Damaged(summary.size - kShaSize, "SHA-256 checksum mismatch");
    }
    whole.Update(stored);
    summary.sha256_hex = HexString(whole.Final());
  }
  // Pass 2 (and 3 with a visitor): the structure.
  for (int pass = 0; pass < (visitor ? 2 : 1); ++pass) {
    FileInput rec(path);
    std::string skip;
    rec.Read(kPrefix, &skip);
    const uint64_t end = summary.size - kShaSize;
    bool first = true, done = false;
    ContentHasher content;
    BackupTrailer counted;
    std::string head, payload;
    while (!done) {
      const uint64_t at = rec.offset();
      if (at + 5 > end || !rec.Read(5, &head)) return Damaged(at, "records end without a trailer");
      const auto type = static_cast<RecordType>(static_cast<unsigned char>(head[0]));
      const uint32_t len = GetBe32(head.data() + 1);
      if (len > kMaxRecord || rec.offset() + len > end) return Damaged(at, "record overruns");
      if (!rec.Read(len, &payload)) return Damaged(at, "short read");
      if (first != (type == RecordType::kHeader)) {
        return Damaged(at, first ? "the first record is not a header" : "a second header");
      }
      first = false;
      switch (type) {
        case RecordType::kHeader:
          if (!summary.header.ParseFromString(payload)) return Damaged(at, "undecodable header");
          break;
        case RecordType::kKey: {
          BackupKey k;
          if (!k.ParseFromString(payload)) return Damaged(at, "undecodable key record");
          content.Add(k);
          counted.set_keys(counted.keys() + 1);
          break;
        }
        case RecordType::kLease: {
          BackupLease l;
          if (!l.ParseFromString(payload)) return Damaged(at, "undecodable lease record");
          counted.set_leases(counted.leases() + 1);
          break;
        }
        case RecordType::kRaw: {
          RawRecord r;
          if (!r.ParseFromString(payload)) return Damaged(at, "undecodable raw record");
          counted.set_raw_records(counted.raw_records() + 1);
          break;
        }
        case RecordType::kTrailer:
          if (!summary.trailer.ParseFromString(payload)) return Damaged(at, "undecodable trailer");
          done = true;
          break;
        default:
          return Damaged(at, absl::StrCat("unknown record type ", static_cast<int>(head[0])));
      }
      if (pass == 1) {
        if (absl::Status s = visitor(type, payload); !s.ok()) return s;
      }
    }
    const uint64_t trailer_end = rec.offset();
    if (counted.keys() != summary.trailer.keys() || counted.leases() != summary.trailer.leases() ||
        counted.raw_records() != summary.trailer.raw_records()) {
      return Damaged(trailer_end, "record counts differ from the trailer's");
    }
    if (content.Final() != summary.trailer.content_hash()) {
      return Damaged(trailer_end, "content hash differs from the trailer's");
    }
    std::string padding;
    if (!rec.Read(end - trailer_end, &padding)) return Damaged(trailer_end, "short read");
    if (padding.find_first_not_of('\0') != std::string::npos) {
      return Damaged(trailer_end + padding.find_first_not_of('\0'), "data after the trailer");
    }
  }
  return summary;
}

std::string SummaryJson(const BackupSummary& s) {
  nlohmann::ordered_json j;
  j["format_version"] = kFormatVersion;
  j["kind"] = s.header.kind();
  j["revision"] = s.header.revision();
  j["compact_revision"] = s.header.compact_revision();
  j["keys"] = s.trailer.keys();
  j["leases"] = s.trailer.leases();
  j["size_bytes"] = s.size;
  j["sha256"] = s.sha256_hex;
  j["content_hash"] = HexString(s.trailer.content_hash());
  j["created_unix_seconds"] = s.header.created_unix_seconds();
  j["chainfire_version"] = s.header.chainfire_version();
  char id[32];
  std::snprintf(id, sizeof id, "%llx", static_cast<unsigned long long>(s.header.cluster_id()));
  j["source_cluster_id"] = id;
  nlohmann::ordered_json members = nlohmann::ordered_json::array();
  for (const BackupMember& m : s.header.members()) {
    std::snprintf(id, sizeof id, "%llx", static_cast<unsigned long long>(m.id()));
    members.push_back(
        {{"name", m.name()},
         {"id", id},
         {"peer_urls", std::vector<std::string>(m.peer_urls().begin(), m.peer_urls().end())}});
  }
  j["source_members"] = members;
  return j.dump(2);
}

}  // namespace chainfire::backup
