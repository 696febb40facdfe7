// WatchHub: delivers the key-value store's events to watchers, exactly once, in revision order,
// with no gaps.
//
// A watcher is either synced (it receives events live, as each write commits) or unsynced (it
// is behind: it starts in the past, or its stream was too slow to take live events). A catch-up
// thread reads unsynced watchers' events from storage; a watcher becomes synced under the hub's
// lock when it has everything up to the last revision the hub was told about, so no event is
// sent twice or skipped at the switch. A slow stream never blocks writes: when it has no room,
// its watchers fall back to catch-up from storage.
// Thread-safety: thread-safe. Sinks are called with the hub's lock held and must not call back
// into the hub from Deliver/Cancel.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "chainfire/mvcc/kv_store.h"

namespace chainfire::mvcc {

struct WatchSpec {
  std::string key;
  std::string range_end;       // etcd's conventions ("" = key alone, "\0" = from key)
  int64_t start_revision = 0;  // 0 = from the next revision
  bool prev_kv = false;
  bool no_put = false;
  bool no_delete = false;
  bool progress_notify = false;  // send an empty response after `progress_interval` of quiet
};

// One watch stream's outgoing side.
class WatchSink {
 public:
  virtual ~WatchSink() = default;
  // Queues events of watch `id` (all of one or more whole revisions, in order; possibly
  // empty to report progress). Returns false, queueing nothing, when the stream is full.
  virtual bool Deliver(int64_t id, std::vector<mvccpb::Event> events, int64_t revision) = 0;
  // The watch starts below the compaction point: cancel it with `compact_revision`.
  virtual void Compacted(int64_t id, int64_t compact_revision) = 0;
  // Whether the stream could take a batch of catch-up events now.
  virtual bool HasRoom() = 0;
};

class WatchHub {
 public:
  // Attaches to `kv` as its observer; `kv` must outlive the hub.
  // `progress_interval`: how long a progress_notify watch may stay quiet before it gets an
  // empty response carrying the current revision (etcd's default: 10 minutes).
  // `catch_up_thread` false (the simulation): no thread; unsynced watchers catch up only when
  // the owner calls CatchUpStep(), and no progress notifications are sent.
  explicit WatchHub(KvStore* kv,
                    std::chrono::milliseconds progress_interval = std::chrono::minutes(10),
                    bool catch_up_thread = true);
  ~WatchHub();

  // Starts watching; the caller has already queued the `created` response on `sink`.
  void Add(WatchSink* sink, int64_t id, const WatchSpec& spec);
  // Stops one watch (false if unknown) / every watch of a sink (before the sink goes away).
  bool Remove(WatchSink* sink, int64_t id);
  void RemoveAll(WatchSink* sink);
  // The store's state was replaced (a Raft snapshot install) and jumped to `revision`: every
  // watcher catches up from storage (or is cancelled as compacted).
  void Resync(int64_t revision);
  // True when every watch of `sink` is synced; *revision is then the last notified revision.
  bool Synced(WatchSink* sink, int64_t* revision);
  // Without a catch-up thread: moves one unsynced watcher forward by one batch read from
  // storage (or cancels it as compacted). False when no watcher could be moved.
  bool CatchUpStep();
  // How many watches are open (etcd_debugging_mvcc_watcher_total).
  size_t watcher_count() {
    std::lock_guard<std::mutex> l(mu_);
    return watchers_.size();
  }

 private:
  struct Watcher {
    WatchSpec spec;
    int64_t next_rev = 0;  // first revision not yet delivered
    bool synced = false;
    std::chrono::steady_clock::time_point last_sent;
    uint64_t seq = 0;  // order of Add: catch-up serves watchers in this order, not by address
  };
  using Key = std::pair<WatchSink*, int64_t>;

  void OnCommitted(int64_t revision, std::vector<mvccpb::Event> events);
  void CatchUpLoop();
  // One catch-up step with mu_ held by `l` (released while reading storage).
  bool CatchUpOnce(std::unique_lock<std::mutex>& l);
  static std::vector<mvccpb::Event> Filter(const WatchSpec& spec,
                                           const std::vector<mvccpb::Event>& events);

  void SendProgressLocked();

  KvStore* kv_;
  const std::chrono::milliseconds progress_interval_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<Key, Watcher> watchers_;  // guarded by mu_
  int64_t notified_ = 0;             // guarded by mu_: last revision passed to OnCommitted
  uint64_t next_seq_ = 0;            // guarded by mu_
  bool stopping_ = false;            // guarded by mu_
  std::thread catch_up_;
};

}  // namespace chainfire::mvcc
