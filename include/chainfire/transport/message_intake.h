// Peer messages between their Raft form and their wire form (proto/chainfire/peer.proto), and
// MessageIntake: the checks every received batch passes, whichever connection it came on.
// Thread-safety: the functions are pure; MessageIntake::Take from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "chainfire/metrics/registry.h"
#include "chainfire/peer.pb.h"
#include "chainfire/raft/types.h"

namespace chainfire::transport {

peer::RaftMessage ToProto(const raft::Message& m);
peer::RaftMessage ToProto(raft::Message&& m);  // moves the entries' data instead of copying
raft::Message FromProto(const peer::RaftMessage& m);
raft::Message FromProto(peer::RaftMessage&& m);  // moves the entries' data out
// The structural checks a received message must pass before it reaches Raft: a known type,
// addressed to `self`, from another member of `members`; entries only on appends, numbered
// consecutively after the message's index and no newer than its term; a snapshot exactly on
// kSnap messages. InvalidArgument naming the problem otherwise (the message is dropped).
absl::Status ValidatePeerMessage(const peer::RaftMessage& m, uint64_t self,
                                 const std::set<uint64_t>& members);

// Counts a received batch's bytes per sender (etcd_network_peer_received_bytes_total), drops
// a batch of another cluster and each message that fails ValidatePeerMessage (logged, one
// line per 100), and converts the rest.
class MessageIntake {
 public:
  // `received_bytes`: the counter of each member (optional entries).
  MessageIntake(uint64_t cluster_id, uint64_t self_id, std::set<uint64_t> members,
                std::map<uint64_t, metrics::Counter*> received_bytes);
  // Appends the batch's acceptable messages to `out`; `bytes` is its size on the wire,
  // `remote` the connection's address (for the log).
  void Take(peer::MessageBatch&& batch, size_t bytes, const std::string& remote,
            std::vector<raft::Message>* out);
  uint64_t foreign_batches() const { return foreign_batches_.load(); }
  uint64_t invalid_messages() const { return invalid_messages_.load(); }

 private:
  const uint64_t cluster_id_;
  const uint64_t self_id_;
  const std::set<uint64_t> members_;
  const std::map<uint64_t, metrics::Counter*> received_bytes_;
  std::atomic<uint64_t> foreign_batches_{0};
  std::atomic<uint64_t> invalid_messages_{0};
};

}  // namespace chainfire::transport
