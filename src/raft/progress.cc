#include "progress.h"

#include <algorithm>

namespace chainfire::raft {

const char* ProgressStateName(ProgressState state) {
  switch (state) {
    case ProgressState::kProbe:
      return "Probe";
    case ProgressState::kReplicate:
      return "Replicate";
    case ProgressState::kSnapshot:
      return "Snapshot";
  }
  return "?";
}

void Progress::Reset(ProgressState new_state) {
  probe_sent = false;
  pending_snapshot = 0;
  state = new_state;
  inflight.clear();
}

void Progress::BecomeProbe() {
  if (state == ProgressState::kSnapshot) {
    const Index pending = pending_snapshot;
    Reset(ProgressState::kProbe);
    next = std::max(match + 1, pending + 1);
  } else {
    Reset(ProgressState::kProbe);
    next = match + 1;
  }
}

void Progress::BecomeReplicate() {
  Reset(ProgressState::kReplicate);
  next = match + 1;
}

void Progress::BecomeSnapshot(Index snapshot_index) {
  Reset(ProgressState::kSnapshot);
  pending_snapshot = snapshot_index;
}

bool Progress::MaybeUpdate(Index index) {
  bool updated = false;
  if (match < index) {
    match = index;
    updated = true;
    probe_sent = false;
  }
  next = std::max(next, index + 1);
  return updated;
}

bool Progress::MaybeDecrTo(Index rejected, Index match_hint) {
  if (state == ProgressState::kReplicate) {
    if (rejected <= match) return false;  // stale
    next = match + 1;
    return true;
  }
  if (next == 0 || next - 1 != rejected) return false;  // stale
  next = std::max<Index>(std::min(rejected, match_hint + 1), 1);
  probe_sent = false;
  return true;
}

bool Progress::IsPaused() const {
  switch (state) {
    case ProgressState::kProbe:
      return probe_sent;
    case ProgressState::kReplicate:
      return InflightFull();
    case ProgressState::kSnapshot:
      return true;
  }
  return true;
}

void Progress::FreeInflightTo(Index index) {
  while (!inflight.empty() && inflight.front() <= index) inflight.pop_front();
}

}  // namespace chainfire::raft
