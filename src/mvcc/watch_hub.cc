#include "chainfire/mvcc/watch_hub.h"

#include <chrono>

#include "chainfire/common/thread_name.h"

namespace chainfire::mvcc {

namespace {
constexpr size_t kCatchUpBatch = 1000;

bool Matches(const WatchSpec& spec, const std::string& k) {
  if (spec.range_end.empty()) return k == spec.key;
  if (spec.range_end == std::string(1, '\0')) return k >= spec.key;
  return k >= spec.key && k < spec.range_end;
}
}  // namespace

WatchHub::WatchHub(KvStore* kv, std::chrono::milliseconds progress_interval, bool catch_up_thread)
    : kv_(kv), progress_interval_(progress_interval) {
  notified_ = kv->revision();
  kv_->SetObserver([this](int64_t rev, std::vector<mvccpb::Event> events) {
    OnCommitted(rev, std::move(events));
  });
  if (catch_up_thread)
    catch_up_ = std::thread([this] {
      SetThreadName("cf-watch-sync");
      CatchUpLoop();
    });
}

WatchHub::~WatchHub() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (catch_up_.joinable()) catch_up_.join();
}

std::vector<mvccpb::Event> WatchHub::Filter(const WatchSpec& spec,
                                            const std::vector<mvccpb::Event>& events) {
  std::vector<mvccpb::Event> out;
  for (const mvccpb::Event& e : events) {
    if (!Matches(spec, e.kv().key())) continue;
    if (e.type() == mvccpb::Event::PUT && spec.no_put) continue;
    if (e.type() == mvccpb::Event::DELETE && spec.no_delete) continue;
    out.push_back(e);
    if (!spec.prev_kv) out.back().clear_prev_kv();
  }
  return out;
}

void WatchHub::Add(WatchSink* sink, int64_t id, const WatchSpec& spec) {
  {
    std::lock_guard<std::mutex> l(mu_);
    Watcher w;
    w.spec = spec;
    w.last_sent = std::chrono::steady_clock::now();
    w.seq = next_seq_++;
    if (spec.start_revision <= 0 || spec.start_revision > notified_) {
      // From now (or from a future revision: live events carry it there).
      w.next_rev = spec.start_revision > 0 ? spec.start_revision : notified_ + 1;
      w.synced = true;
    } else {
      w.next_rev = spec.start_revision;
      w.synced = false;
    }
    watchers_[{sink, id}] = std::move(w);
  }
  cv_.notify_all();
}

bool WatchHub::Remove(WatchSink* sink, int64_t id) {
  std::lock_guard<std::mutex> l(mu_);
  return watchers_.erase({sink, id}) > 0;
}

void WatchHub::RemoveAll(WatchSink* sink) {
  std::lock_guard<std::mutex> l(mu_);
  for (auto it = watchers_.lower_bound({sink, INT64_MIN});
       it != watchers_.end() && it->first.first == sink;) {
    it = watchers_.erase(it);
  }
}

bool WatchHub::Synced(WatchSink* sink, int64_t* revision) {
  std::lock_guard<std::mutex> l(mu_);
  for (auto it = watchers_.lower_bound({sink, INT64_MIN});
       it != watchers_.end() && it->first.first == sink; ++it) {
    if (!it->second.synced) return false;
  }
  *revision = notified_;
  return true;
}

void WatchHub::OnCommitted(int64_t revision, std::vector<mvccpb::Event> events) {
  bool fell_behind = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    notified_ = revision;
    for (auto& [key, w] : watchers_) {
      if (!w.synced || revision < w.next_rev) continue;
      std::vector<mvccpb::Event> mine = Filter(w.spec, events);
      if (!mine.empty()) {
        if (!key.first->Deliver(key.second, std::move(mine), revision)) {
          w.synced = false;  // the stream is full: catch up from storage later
          fell_behind = true;
          continue;
        }
        w.last_sent = std::chrono::steady_clock::now();
      }
      w.next_rev = revision + 1;
    }
  }
  if (fell_behind) cv_.notify_all();
}

void WatchHub::Resync(int64_t revision) {
  {
    std::lock_guard<std::mutex> l(mu_);
    notified_ = revision;
    for (auto& [key, w] : watchers_) w.synced = false;
  }
  cv_.notify_all();
}

void WatchHub::CatchUpLoop() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stopping_) {
    if (!CatchUpOnce(l)) {
      SendProgressLocked();
      cv_.wait_for(l, std::chrono::milliseconds(20));
    }
  }
}

bool WatchHub::CatchUpStep() {
  std::unique_lock<std::mutex> l(mu_);
  return CatchUpOnce(l);
}

bool WatchHub::CatchUpOnce(std::unique_lock<std::mutex>& l) {
  // Pick the oldest unsynced watcher whose stream has room.
  Key target{nullptr, 0};
  Watcher snapshot;
  const int64_t upto = notified_;
  for (auto& [key, w] : watchers_) {
    if (!w.synced && (target.first == nullptr || w.seq < snapshot.seq) && key.first->HasRoom()) {
      target = key;
      snapshot = w;
    }
  }
  if (target.first == nullptr) return false;
  if (snapshot.next_rev > upto) {
    // Nothing to read: it waits for a revision the hub has not seen yet (a watch from a future
    // revision, then a snapshot install resynced every watcher). Reading [next_rev, upto] would
    // move it back to upto + 1 and send revisions it already has (found by the member
    // simulation).
    watchers_[target].synced = true;
    return true;
  }
  const int64_t compacted = kv_->compact_revision();
  if (snapshot.next_rev < compacted) {
    target.first->Compacted(target.second, compacted);
    watchers_.erase(target);
    return true;
  }
  // Read from storage without the lock: revisions <= upto are committed and immutable.
  l.unlock();
  std::vector<mvccpb::Event> events;
  const int64_t done =
      kv_->ReadEvents(snapshot.next_rev, upto, snapshot.spec.key, snapshot.spec.range_end,
                      snapshot.spec.prev_kv, kCatchUpBatch, &events);
  l.lock();
  auto it = watchers_.find(target);
  if (it == watchers_.end() || it->second.next_rev != snapshot.next_rev || it->second.synced) {
    return true;  // removed or changed meanwhile
  }
  std::vector<mvccpb::Event> mine = Filter(snapshot.spec, events);
  if (!mine.empty() && !target.first->Deliver(target.second, std::move(mine), done)) {
    return true;  // no room after all; try again later
  }
  it->second.next_rev = done + 1;
  it->second.last_sent = std::chrono::steady_clock::now();
  // The switch to live events happens here, under the lock, at a revision boundary.
  if (it->second.next_rev > notified_) it->second.synced = true;
  return true;
}

void WatchHub::SendProgressLocked() {
  const auto now = std::chrono::steady_clock::now();
  for (auto& [key, w] : watchers_) {
    if (!w.spec.progress_notify || !w.synced || now - w.last_sent < progress_interval_) continue;
    // An empty response: nothing happened to this watch up to `notified_`.
    if (key.first->Deliver(key.second, {}, notified_)) w.last_sent = now;
  }
}

}  // namespace chainfire::mvcc
