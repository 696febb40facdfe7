// Value types of the Raft core: log entries, persistent state, snapshots and messages.
//
// These are plain structs, not protobuf messages, so the core and the simulation build without
// gRPC or protobuf. The transport (transport/peer_transport.h) encodes them for the wire.
// Membership is fixed at construction of the core, so there are no configuration-change entries.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace chainfire::raft {

using NodeId = uint64_t;
using Term = uint64_t;
using Index = uint64_t;

// No node has id 0; it means "none" (no vote, no known leader).
inline constexpr NodeId kNoNode = 0;

// One replicated log entry. An entry with empty `data` is the no-op a new leader appends to
// commit entries of earlier terms.
struct Entry {
  Term term = 0;
  Index index = 0;
  std::string data;

  bool operator==(const Entry&) const = default;
};

// State that must be durable before any message that depends on it is sent: the current term,
// the vote cast in that term, and the commit index (commit is persisted as a hint; it can be
// re-learned, but must never exceed the last durable log index).
struct HardState {
  Term term = 0;
  NodeId vote = kNoNode;
  Index commit = 0;
  // The member lost its disk and has not finished recovering (see Config::recovering); kept
  // durable so a crash during recovery does not make it a full member.
  bool recovering = false;

  bool operator==(const HardState&) const = default;
  bool IsEmpty() const { return term == 0 && vote == kNoNode && commit == 0 && !recovering; }
};

// Identifies the last log entry a snapshot covers.
struct SnapshotMeta {
  Index index = 0;
  Term term = 0;

  bool operator==(const SnapshotMeta&) const = default;
};

// The application state up to `meta.index`. `data` is opaque to the core.
struct Snapshot {
  SnapshotMeta meta;
  std::string data;

  bool IsEmpty() const { return meta.index == 0; }
  bool operator==(const Snapshot&) const = default;
};

enum class MessageType : uint8_t {
  kProp,               // a proposal forwarded from a follower to the leader
  kApp,                // AppendEntries
  kAppResp,            // AppendEntries response (also the acknowledgement of an installed snapshot)
  kVote,               // RequestVote
  kVoteResp,           //
  kPreVote,            // pre-vote: would you vote for me at term+1? (changes no state)
  kPreVoteResp,        //
  kSnap,               // InstallSnapshot
  kHeartbeat,          //
  kHeartbeatResp,      //
  kTransferLeader,     // a follower asks the leader to hand leadership to `from`
  kTimeoutNow,         // the leader tells the transfer target to campaign at once
  kReadIndex,          // a follower asks the leader for a read index (context identifies the read)
  kReadIndexResp,      //
  kRecoveryProbe,      // a member recovering from disk loss asks for the responder's term
  kRecoveryProbeResp,  // log_term = the responder's current term
};

const char* MessageTypeName(MessageType type);

// A message between members. Which fields are meaningful depends on `type`:
//   kApp:          index/log_term = the entry preceding `entries`; commit = leader's commit
//   kAppResp:      index = last index now matched; reject + reject_hint(+log_term) on mismatch
//   kVote/kPreVote: index/log_term = candidate's last entry; context = "transfer" when forced
//   kVoteResp/kPreVoteResp: reject
//   kSnap:         snapshot
//   kHeartbeat:    commit; context = read-index round, if any
//   kReadIndex/kReadIndexResp: context = caller's read id; index = read index (response)
struct Message {
  MessageType type = MessageType::kApp;
  NodeId from = kNoNode;
  NodeId to = kNoNode;
  Term term = 0;
  Term log_term = 0;
  Index index = 0;
  Index commit = 0;
  bool reject = false;
  Index reject_hint = 0;
  std::vector<Entry> entries;
  std::optional<Snapshot> snapshot;
  std::string context;
  // Set on every message of a member recovering from disk loss: leaders count it toward no
  // quorum (commit, reads, check-quorum) and forget what it acknowledged before.
  bool recovering = false;
};

// The role a node plays in its current term.
enum class Role : uint8_t { kFollower, kPreCandidate, kCandidate, kLeader };

const char* RoleName(Role role);

// Volatile state worth reporting when it changes: who leads and what this node is.
struct SoftState {
  NodeId lead = kNoNode;
  Role role = Role::kFollower;

  bool operator==(const SoftState&) const = default;
};

// The answer to a ReadIndex request: once the local applied index reaches `index`, a read
// issued with `context` may be served from local state and is linearizable.
struct ReadState {
  Index index = 0;
  std::string context;
};

}  // namespace chainfire::raft
