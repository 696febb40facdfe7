// Compaction: ApplyCompact moves the compaction point at once (reads below it fail); the
// superseded versions below it are removed later in bounded slices, by the background
// compactor thread or by CompactStep, and the waiters on that are completed.
#include <algorithm>
#include <set>

#include "chainfire/common/check.h"
#include "chainfire/common/thread_name.h"
#include "chainfire/mvcc/layout.h"
#include "kv_store_internal.h"

namespace chainfire::mvcc {

using storage::Column;

namespace {
using namespace layout;  // NOLINT: the record names
constexpr int64_t kCompactSlice = 1000;
}  // namespace

void KvStore::CountLiveKeys() {
  if (count_revision_ == 0) return;
  const int64_t rev = count_revision_;
  count_revision_ = 0;
  // The newest version <= rev of each key, as Scan walks them; tombstones are not keys.
  std::unique_ptr<rocksdb::Iterator> it(
      engine_->db()->NewIterator(storage::OrderedRead(), engine_->cf(Column::kKv)));
  int64_t keys = 0;
  std::string k, at;
  Revision r, ar;
  for (it->SeekToFirst(); it->Valid();) {
    if (count_stop_) return;  // a snapshot install or shutdown: Load counts again
    CF_CHECK(DecodeVersionKey(it->key().ToStringView(), &k, &r)) << "corrupt mvcc key";
    if (r.main > rev) it->Seek(VersionKey(k, {rev, INT64_MAX}));
    if (!it->Valid()) break;
    CF_CHECK(DecodeVersionKey(it->key().ToStringView(), &at, &ar)) << "corrupt mvcc key";
    if (at == k) {
      if (!layout::IsTombstoneRecord(it->value().ToStringView())) ++keys;
      it->Seek(KeyPrefixEnd(k));
    }
  }
  CF_CHECK(it->status().ok()) << "mvcc key count failed: " << it->status().ToString();
  live_keys_.fetch_add(keys, std::memory_order_relaxed);
}

void KvStore::StartCompactor() {
  count_stop_ = false;
  {
    std::lock_guard<std::mutex> l(compact_mu_);
    stopping_ = false;
    // A compaction interrupted by a crash resumes here.
    compact_target_ = compact_revision_;
  }
  if (options_.background_compaction)
    compactor_ = std::thread([this] {
      SetThreadName("cf-compactor");
      CountLiveKeys();
      CompactorLoop();
    });
}

void KvStore::StopCompactor() {
  count_stop_ = true;
  {
    std::lock_guard<std::mutex> l(compact_mu_);
    stopping_ = true;
  }
  compact_cv_.notify_all();
  if (compactor_.joinable()) compactor_.join();
}

absl::Status KvStore::ApplyCompact(uint64_t index, int64_t rev,
                                   etcdserverpb::CompactionResponse* resp) {
  FlushStaged();
  absl::Status error;
  if (rev > revision()) {
    error = ErrFutureRevision();
  } else if (rev <= compact_revision()) {
    error = ErrCompacted();
  }
  if (!error.ok()) {
    MarkApplied(index);
    resp->mutable_header()->set_revision(revision());
    return error;
  }
  rocksdb::WriteBatch batch;
  batch.Put(engine_->cf(Column::kMeta), kCompactKey, storage::BigEndian64(rev));
  compact_revision_.store(rev, std::memory_order_release);  // reads below fail from now on
  Commit(&batch, index, revision());
  resp->mutable_header()->set_revision(revision());
  {
    std::lock_guard<std::mutex> l(compact_mu_);
    compact_target_ = std::max(compact_target_, rev);
  }
  compact_cv_.notify_all();
  return absl::OkStatus();
}

void KvStore::WhenPhysicallyCompacted(int64_t rev, std::function<void()> done) {
  {
    std::lock_guard<std::mutex> l(compact_mu_);
    if (compacted_through_ < rev) {
      compact_waiters_.emplace_back(rev, std::move(done));
      return;
    }
  }
  done();
}

void KvStore::CompactorLoop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> l(compact_mu_);
      compact_cv_.wait(l, [&] { return stopping_ || compacted_through_ < compact_target_; });
      if (stopping_) return;
    }
    CompactOnce();
  }
}

bool KvStore::CompactStep() {
  CF_CHECK(!options_.background_compaction) << "CompactStep with a background compactor";
  FlushStaged();
  return CompactOnce();
}

bool KvStore::CompactOnce() {
  int64_t from, to;
  {
    std::lock_guard<std::mutex> l(compact_mu_);
    if (compacted_through_ >= compact_target_) return false;
    from = compacted_through_;
    to = compact_target_;
  }
  const int64_t done = CompactSlice(from, to, kCompactSlice);
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard<std::mutex> l(compact_mu_);
    compacted_through_ = done;
    for (auto it = compact_waiters_.begin(); it != compact_waiters_.end();) {
      if (it->first <= done) {
        ready.push_back(std::move(it->second));
        it = compact_waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& f : ready) f();
  return true;
}

int64_t KvStore::CompactSlice(int64_t from, int64_t to, int64_t limit) {
  // Walk the revision index over [from, to]. For each key written there, keep only its newest
  // version at or below `to` (none, if that is a tombstone): every older version goes, also
  // those an earlier compaction kept, or a deleted key would come back when its tombstone is
  // removed.
  std::unique_ptr<rocksdb::Iterator> revs(
      engine_->db()->NewIterator(rocksdb::ReadOptions(), engine_->cf(Column::kKvRevisions)));
  std::unique_ptr<rocksdb::Iterator> versions(
      engine_->db()->NewIterator(storage::OneKeyRead(), engine_->cf(Column::kKv)));
  rocksdb::WriteBatch batch;
  std::set<std::string> done_keys;
  int64_t last = from;
  int64_t n = 0;
  bool hit_limit = false;
  // From `from` itself: a delete kept at the previous compaction revision goes now.
  for (revs->Seek(RevisionKey({std::max<int64_t>(from, 1), 0})); revs->Valid(); revs->Next()) {
    const int64_t main = DecodeRevisionKey(revs->key().ToStringView()).main;
    if (main > to) break;
    if (n >= limit && main != last) {  // slices end on a revision boundary
      hit_limit = true;
      break;
    }
    last = main;
    ++n;
    const std::string key = revs->value().ToString();
    if (!done_keys.insert(key).second) continue;
    versions->Seek(VersionKey(key, {to, INT64_MAX}));
    bool newest = true;
    for (; versions->Valid(); versions->Next()) {
      std::string k;
      Revision r;
      CF_CHECK(DecodeVersionKey(versions->key().ToStringView(), &k, &r)) << "corrupt mvcc key";
      if (k != key) break;
      const bool tombstone = IsTombstoneRecord(versions->value().ToStringView());
      if (newest && (!tombstone || r.main == to)) {
        // The live value at `to` is kept; so is a delete at `to` itself, so that revision `to`
        // (still readable, and where a watch may start or resume) keeps all its events (found
        // by the member simulation: a watch resumed at the compaction revision missed a
        // delete). A later compaction removes it.
        newest = false;
        continue;
      }
      if (!newest && options_.testing_compaction_resurrects) break;  // the bug: keeps the rest
      newest = false;
      batch.Delete(engine_->cf(Column::kKv), versions->key());
      batch.Delete(engine_->cf(Column::kKvRevisions), RevisionKey(r));
    }
  }
  CF_CHECK(revs->status().ok()) << "compaction scan failed: " << revs->status().ToString();
  if (!hit_limit) last = to;
  batch.Put(engine_->cf(Column::kMeta), kCompactDoneKey, storage::BigEndian64(last));
  absl::Status s = engine_->Write(&batch, /*sync=*/false);
  CF_CHECK(s.ok()) << "compaction write failed: " << s.ToString();
  return last;
}

}  // namespace chainfire::mvcc
