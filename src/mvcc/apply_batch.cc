// Writing applied entries: one entry at once, or many staged in one WriteBatch between
// BeginBatch and CommitBatch, visible together (revision, applied index, reads, events).

#include "chainfire/common/check.h"
#include "chainfire/mvcc/layout.h"
#include "kv_store_internal.h"

namespace chainfire::mvcc {

using storage::Column;

void KvStore::Commit(rocksdb::WriteBatch* batch, uint64_t index, int64_t new_revision) {
  batch->Put(engine_->cf(Column::kMeta), layout::kAppliedKey, storage::BigEndian64(index));
  if (new_revision != revision()) {
    batch->Put(engine_->cf(Column::kMeta), layout::kRevisionKey,
               storage::BigEndian64(new_revision));
  }
  // Not synced: the entry's log write precedes this one in the shared WAL, so a crash can only
  // lose a suffix of applies, which are replayed from the log.
  absl::Status s = engine_->Write(batch, /*sync=*/false);
  CF_CHECK(s.ok()) << "applying entry " << index << " failed: " << s.ToString();
  revision_.store(new_revision, std::memory_order_release);
  applied_.store(index, std::memory_order_release);
}

void KvStore::MarkApplied(uint64_t index) {
  if (staged_) {
    staged_->index = index;
    ++staged_->entries;
    return;
  }
  rocksdb::WriteBatch batch;
  Commit(&batch, index, revision());
}

absl::Status KvStore::Finish(uint64_t index, WriteTxn* txn, const absl::Status& status,
                             etcdserverpb::ResponseHeader* header) {
  txn->Settle(status.ok());
  if (!status.ok()) {
    // A request error changes nothing, but the entry counts as applied.
    MarkApplied(index);
    header->set_revision(staged_ ? staged_->revision : revision());
    return status;
  }
  const int64_t rev = txn->revision();
  header->set_revision(rev);
  std::vector<mvccpb::Event> events;
  if (observer_ && !txn->events().empty()) {
    events.reserve(txn->events().size());
    for (auto& e : txn->events()) events.push_back(std::move(*e));
  }
  if (staged_) {
    staged_->index = index;
    staged_->revision = rev;
    staged_->live_keys_delta += txn->live_keys_delta();
    ++staged_->entries;
    if (!events.empty()) staged_->events.emplace_back(rev, std::move(events));
    if (staged_->entries >= internal::kMaxStagedEntries ||
        staged_->batch.GetDataSize() >= internal::kMaxStagedBytes) {
      FlushStaged();
    }
    return absl::OkStatus();
  }
  Commit(txn->batch(), index, rev);
  live_keys_.fetch_add(txn->live_keys_delta(), std::memory_order_relaxed);
  if (!events.empty()) observer_(rev, std::move(events));
  return absl::OkStatus();
}

void KvStore::BeginBatch() {
  CF_CHECK(!staged_) << "BeginBatch inside a batch";
  staged_ = std::make_unique<Staged>();
  staged_->revision = revision();
}

void KvStore::CommitBatch() {
  FlushStaged();
  staged_.reset();
}

void KvStore::FlushStaged() {
  if (!staged_ || staged_->index == 0) return;
  Commit(&staged_->batch, staged_->index, staged_->revision);
  live_keys_.fetch_add(staged_->live_keys_delta, std::memory_order_relaxed);
  staged_->live_keys_delta = 0;
  auto events = std::move(staged_->events);
  staged_->batch.Clear();
  staged_->latest.clear();
  staged_->events.clear();
  staged_->index = 0;
  staged_->entries = 0;
  if (observer_) {
    for (auto& [rev, evs] : events) observer_(rev, std::move(evs));
  }
}

}  // namespace chainfire::mvcc
