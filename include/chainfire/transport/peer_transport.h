// PeerTransport: Raft messages between members over gRPC (proto/chainfire/peer.proto).
//
// Sending: one thread per peer keeps one client stream open to that peer and writes batches of
// whatever messages queued up meanwhile; a broken stream is reopened with a bounded backoff and
// the messages in flight are dropped (Raft retransmits). A full queue drops the oldest message.
// Receiving: the Peer service (a callback reactor per stream, no thread blocked) checks each
// batch's cluster ID, drops and logs batches of another cluster, and hands the rest to the
// delivery callback.
// Thread-safety: Send is thread-safe and never blocks on the network.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "chainfire/node/raft_node.h"
#include "chainfire/peer.grpc.pb.h"
#include "grpcpp/support/channel_arguments.h"

namespace chainfire::transport {

peer::RaftMessage ToProto(const raft::Message& m);
raft::Message FromProto(const peer::RaftMessage& m);

class PeerTransport : public node::Transport {
 public:
  using Deliver = std::function<void(std::vector<raft::Message>)>;
  using ProbeHandler = std::function<peer::ProbeResponse(const peer::ProbeRequest&)>;

  // `peers`: member ID -> "host:port" to dial (the advertised peer URL).
  PeerTransport(uint64_t cluster_id, uint64_t self_id, std::map<uint64_t, std::string> peers,
                Deliver deliver, ProbeHandler probe);
  ~PeerTransport() override;

  void Send(raft::Message m) override;
  // Handlers for the leader-side lease calls; set before the peer server starts.
  using KeepAliveHandler = std::function<absl::StatusOr<etcdserverpb::LeaseKeepAliveResponse>(
      const etcdserverpb::LeaseKeepAliveRequest&)>;
  using TimeToLiveHandler = std::function<absl::StatusOr<etcdserverpb::LeaseTimeToLiveResponse>(
      const etcdserverpb::LeaseTimeToLiveRequest&)>;
  void SetLeaseHandlers(KeepAliveHandler keep_alive, TimeToLiveHandler ttl) {
    keep_alive_ = std::move(keep_alive);
    ttl_ = std::move(ttl);
  }
  void Stop();
  // The service to register on the peer gRPC server.
  grpc::Service* service();

  uint64_t dropped_foreign_batches() const { return foreign_batches_.load(); }

 private:
  class Service;
  struct Peer {
    uint64_t id;
    std::string address;
    std::mutex mu;
    std::condition_variable cv;
    std::deque<raft::Message> queue;
    grpc::ClientContext* context = nullptr;  // of the open stream, for cancellation on Stop
    std::thread thread;
  };
  void SenderLoop(Peer* p);

  uint64_t cluster_id_;
  uint64_t self_id_;
  Deliver deliver_;
  ProbeHandler probe_;
  KeepAliveHandler keep_alive_;
  TimeToLiveHandler ttl_;
  std::map<uint64_t, std::unique_ptr<Peer>> peers_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> foreign_batches_{0};
  std::unique_ptr<Service> service_;
};

// Asks the member at `address` whether `self_id` already joined cluster `cluster_id` (the
// wiped-member check at startup). Unavailable when it cannot be reached within the timeout.
absl::StatusOr<peer::ProbeResponse> ProbePeer(const std::string& address, uint64_t cluster_id,
                                              uint64_t self_id, int timeout_ms);

// Channel arguments for peer and client connections: large messages, keepalive.
grpc::ChannelArguments PeerChannelArguments();

}  // namespace chainfire::transport
