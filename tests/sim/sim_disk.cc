#include "sim_disk.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "chainfire/common/check.h"

namespace chainfire::sim {
namespace {

void PutU64(std::string& out, uint64_t v) {
  char b[8];
  std::memcpy(b, &v, 8);
  out.append(b, 8);
}
void PutBytes(std::string& out, const std::string& s) {
  PutU64(out, s.size());
  out += s;
}

struct Reader {
  const std::string& in;
  size_t pos;
  size_t end;
  bool ok = true;
  uint64_t U64() {
    if (end - pos < 8) {
      ok = false;
      return 0;
    }
    uint64_t v;
    std::memcpy(&v, in.data() + pos, 8);
    pos += 8;
    return v;
  }
  std::string Bytes() {
    const uint64_t n = U64();
    if (!ok || end - pos < n) {
      ok = false;
      return {};
    }
    std::string s = in.substr(pos, n);
    pos += n;
    return s;
  }
};

uint32_t Checksum(const char* data, size_t n) {
  uint32_t h = 2166136261u;  // FNV-1a
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(data[i]);
    h *= 16777619u;
  }
  return h;
}

}  // namespace

// Record: u64 payload length, u64 checksum of payload, payload. Payload: flags (1 snapshot,
// 2 hard state), [snapshot index, term, data], [term, vote, commit], entry count, entries.
std::string EncodeRecord(const node::PersistRequest& r) {
  std::string p;
  PutU64(p, (r.snapshot ? 1 : 0) | (r.hard_state ? 2 : 0));
  if (r.snapshot) {
    PutU64(p, r.snapshot->meta.index);
    PutU64(p, r.snapshot->meta.term);
    PutBytes(p, r.snapshot->data);
  }
  if (r.hard_state) {
    PutU64(p, r.hard_state->term);
    PutU64(p, r.hard_state->vote);
    PutU64(p, r.hard_state->commit);
    PutU64(p, r.hard_state->recovering ? 1 : 0);
  }
  PutU64(p, r.entries.size());
  for (const raft::Entry& e : r.entries) {
    PutU64(p, e.term);
    PutU64(p, e.index);
    PutBytes(p, e.data);
  }
  std::string out;
  PutU64(out, p.size());
  PutU64(out, Checksum(p.data(), p.size()));
  out += p;
  return out;
}

std::vector<node::PersistRequest> DecodeRecords(const std::string& bytes, size_t* valid_bytes) {
  std::vector<node::PersistRequest> out;
  size_t pos = 0;
  while (pos < bytes.size()) {
    Reader header{bytes, pos, bytes.size()};
    const uint64_t len = header.U64();
    const uint64_t sum = header.U64();
    if (!header.ok || bytes.size() - header.pos < len) break;  // torn: cut here
    if (Checksum(bytes.data() + header.pos, len) != sum) break;
    Reader r{bytes, header.pos, header.pos + len};
    node::PersistRequest req;
    const uint64_t flags = r.U64();
    if (flags & 1) {
      raft::Snapshot s;
      s.meta.index = r.U64();
      s.meta.term = r.U64();
      s.data = r.Bytes();
      req.snapshot = std::move(s);
    }
    if (flags & 2) {
      raft::HardState hs;
      hs.term = r.U64();
      hs.vote = r.U64();
      hs.commit = r.U64();
      hs.recovering = r.U64() == 1;
      req.hard_state = hs;
    }
    const uint64_t n = r.U64();
    for (uint64_t i = 0; i < n && r.ok; ++i) {
      raft::Entry e;
      e.term = r.U64();
      e.index = r.U64();
      e.data = r.Bytes();
      req.entries.push_back(std::move(e));
    }
    CF_CHECK(r.ok) << "record with a valid checksum failed to decode";
    out.push_back(std::move(req));
    pos = header.pos + len;
  }
  *valid_bytes = pos;
  return out;
}

void SimDisk::Crash(Random& rng, double keep_unsynced, bool fsync_lies) {
  if (fsync_lies && before_last_sync < synced.size()) {
    synced.resize(before_last_sync);
    unsynced.clear();
    return;
  }
  if (!unsynced.empty() && rng.Chance(keep_unsynced)) {
    synced += unsynced.substr(0, rng.Range(1, unsynced.size()));
  }
  unsynced.clear();
}

SimStorage::SimStorage(SimDisk* disk, const DiskFaults* faults, Random* rng, const uint64_t* now_ms,
                       DurableHook on_durable)
    : disk_(disk), faults_(faults), rng_(rng), now_ms_(now_ms), on_durable_(std::move(on_durable)) {
  CF_CHECK(disk_->unsynced.empty()) << "storage opened on a disk with unsynced bytes";
  size_t valid = 0;
  for (const node::PersistRequest& r : DecodeRecords(disk_->synced, &valid)) {
    ApplyToView(r);
  }
  if (valid < disk_->synced.size()) {
    // Only the tail can be bad: every earlier record was complete before the next was written.
    ++torn_records_cut_;
    disk_->synced.resize(valid);
  }
}

void SimStorage::ApplyToView(const node::PersistRequest& r) {
  if (r.snapshot) {
    CF_CHECK(view_.ApplySnapshot(*r.snapshot).ok()) << "snapshot goes backwards";
  }
  if (!r.entries.empty()) {
    absl::Status s = view_.Append(r.entries);
    CF_CHECK(s.ok()) << s.ToString();
  }
  if (r.hard_state) view_.SetHardState(*r.hard_state);
}

void SimStorage::SubmitWrite(node::PersistRequest request) {
  if (faults_->testing_drop_vote && request.hard_state) request.hard_state->vote = raft::kNoNode;
  disk_->unsynced += EncodeRecord(request);
  uint64_t done = *now_ms_ + rng_->Range(faults_->min_latency_ms, faults_->max_latency_ms);
  if (!pending_.empty()) done = std::max(done, pending_.back().done_at_ms);
  const bool fails = rng_->Chance(faults_->fsync_failure);
  pending_.push_back(PendingWrite{std::move(request), disk_->unsynced.size(), done, fails});
}

absl::StatusOr<size_t> SimStorage::PollCompletedWrites() {
  if (failed_) return absl::DataLossError("fsync failed earlier");
  size_t n = 0;
  while (!pending_.empty() && pending_.front().done_at_ms <= *now_ms_) {
    PendingWrite& w = pending_.front();
    if (w.fails) {
      failed_ = true;
      return absl::DataLossError("simulated fsync failure");
    }
    // fsync: every byte written so far up to this write's end becomes durable.
    const size_t end = w.end_offset;
    disk_->before_last_sync = disk_->synced.size();
    disk_->synced += disk_->unsynced.substr(0, end);
    disk_->unsynced.erase(0, end);
    for (PendingWrite& later : pending_) later.end_offset -= end;
    ApplyToView(w.request);
    if (on_durable_) on_durable_(w.request);
    pending_.pop_front();
    ++n;
  }
  return n;
}

absl::Status SimStorage::SaveSnapshotAndCompact(raft::Index index, std::string data,
                                                raft::Index compact_to) {
  if (failed_) return absl::DataLossError("fsync failed earlier");
  absl::Status s = view_.CreateSnapshot(index, std::move(data));
  if (!s.ok()) return s;
  if (compact_to > view_.FirstIndex()) {
    s = view_.Compact(std::min(compact_to, index));
    if (!s.ok()) return s;
  }
  Checkpoint();
  return absl::OkStatus();
}

absl::Status SimStorage::PersistRecovering() {
  if (failed_) return absl::DataLossError("fsync failed earlier");
  CF_CHECK(pending_.empty()) << "PersistRecovering with writes queued";
  raft::HardState hs = view_.InitialHardState();
  hs.recovering = true;
  view_.SetHardState(hs);
  Checkpoint();
  return absl::OkStatus();
}

void SimStorage::Checkpoint() {
  // A new file holding the durable state in one record replaces the old one atomically
  // (write, fsync, rename). The unsynced tail carries over unchanged.
  node::PersistRequest base;
  base.snapshot = *view_.GetSnapshot();
  base.hard_state = view_.InitialHardState();
  if (view_.LastIndex() >= view_.FirstIndex()) {
    base.entries = *view_.Entries(view_.FirstIndex(), view_.LastIndex() + 1, raft::kNoLimit);
  }
  disk_->synced = EncodeRecord(base);
  disk_->before_last_sync = disk_->synced.size();
}

}  // namespace chainfire::sim
