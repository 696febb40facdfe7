// Progress: the leader's view of one follower's log (etcd-io/raft's tracker.Progress).
//
//   kProbe:     next is a guess; at most one append is outstanding until a reply or heartbeat.
//   kReplicate: appends are pipelined optimistically, at most max_inflight unacknowledged.
//   kSnapshot:  a snapshot was sent; nothing else is sent until it is acknowledged.
// Thread-safety: none (owned by one Raft).
#pragma once

#include <cstddef>
#include <deque>

#include "chainfire/raft/types.h"

namespace chainfire::raft {

enum class ProgressState : uint8_t { kProbe, kReplicate, kSnapshot };

const char* ProgressStateName(ProgressState state);

struct Progress {
  Index match = 0;
  Index next = 1;
  ProgressState state = ProgressState::kProbe;
  Index pending_snapshot = 0;
  uint64_t snapshot_sent_tick = 0;
  bool recent_active = false;
  bool probe_sent = false;
  bool recovering = false;  // the follower is recovering from disk loss: counts for no quorum
  size_t max_inflight = 0;
  std::deque<Index> inflight;  // last index of each unacknowledged append, ascending

  void Reset(ProgressState new_state);
  void BecomeProbe();
  void BecomeReplicate();
  void BecomeSnapshot(Index snapshot_index);
  // Raises match to `index` (from an acknowledgement); returns whether it moved.
  bool MaybeUpdate(Index index);
  // A rejection of the append at `rejected`; `match_hint` is where the follower's log may match.
  // Returns false when the rejection is stale.
  bool MaybeDecrTo(Index rejected, Index match_hint);
  bool IsPaused() const;
  bool InflightFull() const { return inflight.size() >= max_inflight; }
  void FreeInflightTo(Index index);
};

}  // namespace chainfire::raft
