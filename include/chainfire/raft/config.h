// Configuration of one Raft member. Membership is fixed: `voters` is the whole cluster for the
// life of its data; there are no configuration changes.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "chainfire/raft/log_storage.h"
#include "chainfire/raft/types.h"

namespace chainfire::raft {

struct Config {
  NodeId id = kNoNode;
  // Every member of the cluster, including `id`. Order does not matter.
  std::vector<NodeId> voters;
  // Ticks without hearing from a leader before a follower campaigns; the actual timeout is
  // drawn uniformly from [election_tick, 2*election_tick) on every reset.
  int election_tick = 10;
  // Ticks between leader heartbeats. Must be < election_tick.
  int heartbeat_tick = 1;
  // The last index the application has applied (from its own durable state); 0 on first boot.
  Index applied = 0;
  // Upper bound on entry bytes per append message (at least one entry is always sent).
  uint64_t max_size_per_msg = 1 << 20;
  // Upper bound on the bytes of committed entries handed out in one Ready.
  uint64_t max_committed_size_per_ready = 64 << 20;
  // Unacknowledged append messages per follower in replicate state (pipelining bound).
  size_t max_inflight_msgs = 256;
  // Pre-vote: a candidate first asks whether it could win before disrupting the term.
  bool pre_vote = true;
  // Check-quorum: a leader steps down when it has not heard from a quorum for an election
  // timeout, and a follower that hears from a leader ignores vote requests meanwhile.
  bool check_quorum = true;
  // Seed of the randomized election timeouts (the core has no other source of randomness).
  uint64_t seed = 1;
  // Disk-loss recovery: the member lost its disk and rejoins with an empty log (etcd's
  // --initial-cluster-state=existing on an empty data dir). Its votes and acknowledgements
  // before the loss may have helped elect leaders and commit entries it no longer holds, so
  // until it has recovered it grants no votes, never campaigns, and flags its messages so
  // leaders count it toward no quorum and drop its old match index. It has recovered when its
  // durable log holds the commit index of its current-term leader, that index is of the
  // leader's term (so it covers every entry committed in earlier terms), it is at or past
  // the first commit index that leader sent it (so it covers what that leader committed
  // before the member rejoined), and a majority of the other members told it their current
  // terms: any term in which it may have voted before the loss is at most the highest of
  // those (every winning vote set meets every such majority), so on finishing it moves to at
  // least that term and records a vote for itself there, never voting twice in one term.
  // The flag is part of the durable hard state; with 3 members, recovery needs both others.
  bool recovering = false;

  // TEST ONLY. Reproduces a known bug so the simulation can show its checkers catch it: the
  // leader counts its own entries toward commit as soon as they are appended, before its own
  // write is durable (etcd issue #14370). Never set outside tests.
  bool testing_count_unpersisted_own_entries = false;

  // Returns InvalidArgument naming the first bad field.
  absl::Status Validate() const;
};

}  // namespace chainfire::raft
