#include "chainfire/storage/raft_log_store.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "chainfire/common/check.h"
#include "chainfire/common/thread_name.h"
#include "chainfire/metrics/registry.h"
#include "chainfire/storage/raft_format.h"
#include "rocksdb/write_batch.h"

namespace chainfire::storage {

namespace {
using namespace raft_format;  // NOLINT: the record names
// Enough for the appends of a busy leader to followers that are slightly behind (a few seconds
// of writes); more only held memory (32 MiB before, 2026-12-07).
constexpr size_t kTailBytes = 8 << 20;
constexpr size_t kTailEntryOverhead = 32;
// A synced write slower than this sends the next writes to the writer thread (SubmitWrite).
constexpr std::chrono::milliseconds kInlineWriteMaxTime{10};
}  // namespace

absl::StatusOr<std::unique_ptr<RaftLogStore>> RaftLogStore::Open(
    Engine* engine, std::function<void()> on_write_done, WriteMode mode) {
  auto store = std::unique_ptr<RaftLogStore>(new RaftLogStore(engine));
  store->on_write_done_ = std::move(on_write_done);
  if (auto hs = engine->Get(Column::kRaftState, kHardStateKey); hs.ok()) {
    auto decoded = DecodeHardState(*hs);
    if (!decoded.ok()) return decoded.status();
    store->hard_state_ = *decoded;
  } else if (!absl::IsNotFound(hs.status())) {
    return hs.status();
  }
  if (auto snap = engine->Get(Column::kRaftState, kSnapshotKey); snap.ok()) {
    if (!DecodeSnapshotMeta(*snap, &store->snapshot_.meta)) {
      return absl::DataLossError("snapshot record has a bad size");
    }
    store->snapshot_.data = snap->substr(16);
  }
  if (auto c = engine->Get(Column::kRaftState, kCompactedKey); c.ok()) {
    if (c->size() != 16 || !DecodeSnapshotMeta(*c, &store->compacted_)) {
      return absl::DataLossError("compaction record has a bad size");
    }
  }
  store->first_index_ = store->compacted_.index + 1;
  std::unique_ptr<rocksdb::Iterator> it(
      engine->db()->NewIterator(rocksdb::ReadOptions(), engine->cf(Column::kRaftLog)));
  it->SeekToLast();
  store->last_index_ =
      it->Valid() ? DecodeEntryKey(it->key().ToStringView()) : store->compacted_.index;
  if (!it->status().ok()) return FromRocks(it->status(), "scan raft log");
  it->SeekToFirst();
  if (it->Valid() && DecodeEntryKey(it->key().ToStringView()) != store->first_index_) {
    return absl::DataLossError(absl::StrCat("raft log starts at index ",
                                            DecodeEntryKey(it->key().ToStringView()), ", expected ",
                                            store->first_index_));
  }
  if (store->hard_state_.commit > store->last_index_) {
    return absl::DataLossError(absl::StrCat("hard state commit ", store->hard_state_.commit,
                                            " is beyond the last log index ", store->last_index_,
                                            ": the log lost synced entries; refusing to start"));
  }
  store->written_last_ = store->last_index_;
  if (mode == WriteMode::kWriterThread)
    store->writer_ = std::thread([s = store.get()] {
      SetThreadName("cf-wal");
      s->WriterLoop();
    });
  return store;
}

void RaftLogStore::AddInitialSnapshot(Engine* engine, rocksdb::WriteBatch* batch, raft::Index index,
                                      raft::Term term) {
  const std::string meta = EncodeSnapshotMeta({index, term});
  batch->Put(engine->cf(Column::kRaftState), kSnapshotKey, meta);  // no data: the state is local
  batch->Put(engine->cf(Column::kRaftState), kCompactedKey, meta);
  batch->Put(engine->cf(Column::kRaftState), kHardStateKey,
             EncodeHardState({term, raft::kNoNode, index, false}));
}

RaftLogStore::~RaftLogStore() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

raft::HardState RaftLogStore::InitialHardState() const {
  std::lock_guard<std::mutex> l(mu_);
  return hard_state_;
}

raft::Index RaftLogStore::FirstIndex() const {
  std::lock_guard<std::mutex> l(mu_);
  return first_index_;
}

raft::Index RaftLogStore::LastIndex() const {
  std::lock_guard<std::mutex> l(mu_);
  return last_index_;
}

absl::StatusOr<raft::Snapshot> RaftLogStore::GetSnapshot() const {
  std::lock_guard<std::mutex> l(mu_);
  return snapshot_;
}

absl::StatusOr<raft::Term> RaftLogStore::TermAt(raft::Index index) const {
  raft::Index first, last;
  raft::SnapshotMeta compacted;
  {
    std::lock_guard<std::mutex> l(mu_);
    first = first_index_;
    last = last_index_;
    compacted = compacted_;
  }
  if (index == compacted.index) return compacted.term;
  if (index < first) return raft::CompactedError(index);
  if (index > last) return raft::UnavailableError(index);
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!tail_.empty() && index >= tail_.front().index && index <= tail_.back().index) {
      return tail_[index - tail_.front().index].term;
    }
  }
  auto v = engine_->Get(Column::kRaftLog, EntryKey(index));
  if (!v.ok()) return v.status();
  auto e = DecodeEntry(index, *v);
  if (!e.ok()) return e.status();
  return e->term;
}

absl::StatusOr<std::vector<raft::Entry>> RaftLogStore::Entries(raft::Index lo, raft::Index hi,
                                                               uint64_t max_bytes) const {
  raft::Index first, last;
  {
    std::lock_guard<std::mutex> l(mu_);
    first = first_index_;
    last = last_index_;
  }
  if (lo < first) return raft::CompactedError(lo);
  if (hi > last + 1) return raft::UnavailableError(hi - 1);
  std::vector<raft::Entry> out;
  uint64_t size = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!tail_.empty() && lo >= tail_.front().index && hi <= tail_.back().index + 1) {
      for (raft::Index i = lo; i < hi; ++i) {
        const raft::Entry& e = tail_[i - tail_.front().index];
        size += e.data.size();
        if (!out.empty() && size > max_bytes) break;
        out.push_back(e);
      }
      return out;
    }
  }
  std::unique_ptr<rocksdb::Iterator> it(
      engine_->db()->NewIterator(rocksdb::ReadOptions(), engine_->cf(Column::kRaftLog)));
  raft::Index next = lo;
  for (it->Seek(EntryKey(lo)); it->Valid() && next < hi; it->Next(), ++next) {
    const raft::Index index = DecodeEntryKey(it->key().ToStringView());
    if (index != next) {
      return absl::DataLossError(absl::StrCat("raft log has a gap at index ", next));
    }
    auto e = DecodeEntry(index, it->value().ToStringView());
    if (!e.ok()) return e.status();
    size += e->data.size();
    if (!out.empty() && size > max_bytes) break;
    out.push_back(std::move(*e));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "read raft log");
  if (out.empty() && lo < hi) return absl::DataLossError(absl::StrCat("raft log lost ", lo));
  return out;
}

void RaftLogStore::SubmitWrite(node::PersistRequest request) {
  {
    std::unique_lock<std::mutex> l(mu_);
    if (writer_.joinable() && !writing_ && queue_.empty() && !stopping_ && last_sync_fast_) {
      // The writer is idle and the disk fast: write here, with no hand-off to the writer and
      // back (two thread wake-ups per write). A slow fsync sends the next writes to the writer
      // again, so the caller's loop keeps serving meanwhile.
      writing_ = true;
      l.unlock();
      std::deque<node::PersistRequest> batch;
      batch.push_back(std::move(request));
      WriteGroup(std::move(batch));  // clears writing_
      // Nothing was queued meanwhile: only this thread submits.
      return;
    } else {
      queue_.push_back(std::move(request));
    }
  }
  cv_.notify_one();
}

absl::StatusOr<size_t> RaftLogStore::PollCompletedWrites() {
  std::lock_guard<std::mutex> l(mu_);
  if (!failure_.ok()) return failure_;
  const size_t n = completed_;
  completed_ = 0;
  return n;
}

absl::Status RaftLogStore::PersistRecovering() {
  raft::HardState hs;
  {
    std::lock_guard<std::mutex> l(mu_);
    CF_CHECK(queue_.empty()) << "PersistRecovering with writes queued";
    hs = hard_state_;
  }
  hs.recovering = true;
  rocksdb::WriteBatch wb;
  wb.Put(engine_->cf(Column::kRaftState), kHardStateKey, EncodeHardState(hs));
  if (absl::Status s = engine_->Write(&wb, /*sync=*/true); !s.ok()) return s;
  std::lock_guard<std::mutex> l(mu_);
  hard_state_ = hs;
  return absl::OkStatus();
}

absl::Status RaftLogStore::SaveSnapshotAndCompact(raft::Index index, std::string data,
                                                  raft::Index compact_to) {
  raft::Index first, last;
  raft::Index snap_index;
  {
    std::lock_guard<std::mutex> l(mu_);
    first = first_index_;
    last = last_index_;
    snap_index = snapshot_.meta.index;
  }
  if (index <= snap_index) return raft::CompactedError(index);
  if (index > last) {
    return absl::InvalidArgumentError(
        absl::StrCat("snapshot index ", index, " is beyond the last log index ", last));
  }
  auto term = TermAt(index);
  if (!term.ok()) return term.status();
  compact_to = std::min(compact_to, index);
  raft::SnapshotMeta compacted;
  {
    std::lock_guard<std::mutex> l(mu_);
    compacted = compacted_;
  }
  rocksdb::WriteBatch wb;
  std::string record = EncodeSnapshotMeta({index, *term});
  record += data;
  wb.Put(engine_->cf(Column::kRaftState), kSnapshotKey, record);
  if (compact_to >= first) {
    auto cterm = TermAt(compact_to);
    if (!cterm.ok()) return cterm.status();
    compacted = {compact_to, *cterm};
    wb.Put(engine_->cf(Column::kRaftState), kCompactedKey, EncodeSnapshotMeta(compacted));
    wb.DeleteRange(engine_->cf(Column::kRaftLog), EntryKey(first), EntryKey(compact_to + 1));
  }
  if (absl::Status s = engine_->Write(&wb, /*sync=*/true); !s.ok()) return s;
  std::lock_guard<std::mutex> l(mu_);
  snapshot_ = raft::Snapshot{{index, *term}, std::move(data)};
  compacted_ = compacted;
  first_index_ = compacted.index + 1;
  DropTailThrough(compacted.index);
  return absl::OkStatus();
}

void RaftLogStore::DropTailThrough(raft::Index index) {
  while (!tail_.empty() && tail_.front().index <= index) {
    tail_bytes_ -= tail_.front().data.size() + kTailEntryOverhead;
    tail_.pop_front();
  }
}

void RaftLogStore::AddToTail(std::vector<raft::Entry> entries) {
  if (entries.empty()) return;
  const raft::Index from = entries.front().index;
  while (!tail_.empty() && tail_.back().index >= from) {  // a replaced (conflicting) suffix
    tail_bytes_ -= tail_.back().data.size() + kTailEntryOverhead;
    tail_.pop_back();
  }
  if (!tail_.empty() && tail_.back().index + 1 != from) {
    tail_.clear();
    tail_bytes_ = 0;
  }
  for (raft::Entry& e : entries) {
    tail_bytes_ += e.data.size() + kTailEntryOverhead;
    tail_.push_back(std::move(e));
  }
  while (tail_bytes_ > kTailBytes && tail_.size() > 1) {
    tail_bytes_ -= tail_.front().data.size() + kTailEntryOverhead;
    tail_.pop_front();
  }
}

void RaftLogStore::FlushQueued(size_t max_writes) {
  std::deque<node::PersistRequest> batch;
  {
    std::lock_guard<std::mutex> l(mu_);
    while (!queue_.empty() && batch.size() < max_writes) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
  }
  if (!batch.empty()) WriteGroup(std::move(batch));
}

size_t RaftLogStore::queued() const {
  std::lock_guard<std::mutex> l(mu_);
  return queue_.size();
}

uint64_t RaftLogStore::syncs() const {
  std::lock_guard<std::mutex> l(mu_);
  return syncs_;
}

uint64_t RaftLogStore::writes() const {
  std::lock_guard<std::mutex> l(mu_);
  return writes_;
}

void RaftLogStore::WriterLoop() {
  for (;;) {
    std::deque<node::PersistRequest> batch;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stopping_ || (!queue_.empty() && !writing_); });
      if (queue_.empty()) return;  // stopping with nothing left to write
      batch.swap(queue_);
      writing_ = true;
    }
    if (!WriteGroup(std::move(batch))) return;  // clears writing_
  }
}

namespace {

// ChainFire's own: log entries per synced write (how much one fsync carries).
metrics::Histogram* GroupCommitEntries() {
  static metrics::Histogram* h =
      metrics::Default()
          .AddHistogram("chainfire_disk_wal_group_commit_entries",
                        "Log entries written by one synced write of the Raft log (group commit).",
                        metrics::ExponentialBuckets(1, 2, 12))
          ->Get();
  return h;
}

}  // namespace

bool RaftLogStore::WriteGroup(std::deque<node::PersistRequest> batch) {
  // One WriteBatch, one fsync, for everything queued meanwhile (group commit); no fsync when
  // every request only moves the commit index (PersistRequest::sync).
  size_t entries = 0;
  bool sync = false;
  for (const node::PersistRequest& r : batch) {
    entries += r.entries.size();
    sync = sync || r.sync;
  }
  if (sync) GroupCommitEntries()->Observe(static_cast<double>(entries));
  rocksdb::WriteBatch wb;
  std::optional<raft::HardState> hs;
  std::optional<raft::Snapshot> snapshot;
  raft::Index last = written_last_;
  for (node::PersistRequest& r : batch) {
    if (r.snapshot) {
      // A follower installs the leader's snapshot: it replaces the whole log.
      std::string record = EncodeSnapshotMeta(r.snapshot->meta);
      record += r.snapshot->data;
      wb.Put(engine_->cf(Column::kRaftState), kSnapshotKey, record);
      wb.Put(engine_->cf(Column::kRaftState), kCompactedKey, EncodeSnapshotMeta(r.snapshot->meta));
      wb.DeleteRange(engine_->cf(Column::kRaftLog), EntryKey(0), EntryKey(UINT64_MAX));
      last = r.snapshot->meta.index;
      snapshot = std::move(r.snapshot);
    }
    if (!r.entries.empty()) {
      const raft::Index from = r.entries.front().index;
      const raft::Index to = r.entries.back().index;
      if (from <= last && to < last) {
        // A follower's conflicting suffix: entries past the new tail must go.
        wb.DeleteRange(engine_->cf(Column::kRaftLog), EntryKey(to + 1), EntryKey(last + 1));
      }
      for (const raft::Entry& e : r.entries) {
        const std::string key = EntryKey(e.index);
        const std::string header = EntryHeader(e.term);
        const rocksdb::Slice key_part(key);
        const rocksdb::Slice value_parts[] = {header, e.data};
        wb.Put(engine_->cf(Column::kRaftLog), rocksdb::SliceParts(&key_part, 1),
               rocksdb::SliceParts(value_parts, 2));
      }
      last = to;
    }
    if (r.hard_state) hs = r.hard_state;
  }
  if (hs) wb.Put(engine_->cf(Column::kRaftState), kHardStateKey, EncodeHardState(*hs));
  const auto start = std::chrono::steady_clock::now();
  absl::Status s = engine_->Write(&wb, sync, /*backend_commit=*/false);
  const bool fast = std::chrono::steady_clock::now() - start < kInlineWriteMaxTime;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (sync) last_sync_fast_ = fast;  // an unsynced write says nothing of the disk
    // Idle again as the write is published: the submitter may write the next one itself.
    writing_ = false;
    if (!s.ok()) {
      // Never carry on after a failed sync: report it; nothing later counts as durable.
      failure_ = absl::DataLossError(absl::StrCat("raft log write failed: ", s.message()));
      stopping_ = true;
    } else {
      written_last_ = last;
      last_index_ = last;
      for (node::PersistRequest& r : batch) {
        if (r.snapshot) {
          tail_.clear();
          tail_bytes_ = 0;
        }
        AddToTail(std::move(r.entries));
      }
      if (snapshot) {
        compacted_ = snapshot->meta;
        first_index_ = snapshot->meta.index + 1;
        snapshot_ = std::move(*snapshot);
      }
      if (hs) hard_state_ = *hs;
      completed_ += batch.size();
      if (sync) ++syncs_;
      writes_ += batch.size();
    }
  }
  if (on_write_done_) on_write_done_();
  return s.ok();
}

}  // namespace chainfire::storage
