// PeerTransport: Raft messages between members over gRPC (proto/chainfire/peer.proto), or,
// with StartLinks (peer URLs without TLS), over PeerLinks' plain TCP links read and written
// by the node thread, gRPC still serving everything else on the same port.
//
// Sending: one client stream per peer (gRPC's callback API, no thread blocked on it). Send
// queues a message; Flush starts a write of everything queued for a peer unless one is in
// flight, on the calling thread (the node thread: no hand-off to a sender thread); when a write
// completes, what queued meanwhile goes out as the next batch. One write in flight per peer, so
// batches grow with load. A broken stream drops the messages of its write (Raft retransmits);
// a thread per peer reopens it after a bounded backoff. A full queue drops the oldest message.
// Receiving: the Peer service (a callback reactor per stream, no thread blocked) checks each
// batch's cluster ID, drops and logs batches of another cluster, and hands the rest to the
// delivery callback.
// Snapshots: a kSnap message does not go on the message stream. A thread of its own asks the
// snapshot source for a file with the sender's state and streams it (SendSnapshot) in 1 MiB
// chunks; one transfer per peer at a time (later kSnap messages for that peer are dropped
// while one runs; a failed transfer is retried when Raft sends the snapshot again). The
// receiver writes the chunks to a file in its receive dir, fsyncs it, has it verified
// (checksum, structure) and only then delivers the message with snapshot.data = the file's
// path; a broken or damaged transfer delivers nothing.
// Metrics (metrics::Default(), etcd's names): bytes sent to and received from each peer, send
// failures per peer, leader heartbeats lost to a broken stream, the round trip of a Probe call
// to each peer every 5 s, the time to receive and fsync a snapshot.
// Thread-safety: Send and Flush are thread-safe and never block on the network.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "chainfire/common/worker_pool.h"
#include "chainfire/metrics/registry.h"
#include "chainfire/node/raft_node.h"
#include "chainfire/peer.grpc.pb.h"
#include "chainfire/transport/message_intake.h"
#include "chainfire/transport/peer_links.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace chainfire::transport {

class PeerTransport : public node::Transport {
 public:
  using Deliver = std::function<void(std::vector<raft::Message>)>;
  using ProbeHandler = std::function<peer::ProbeResponse(const peer::ProbeRequest&)>;

  // `peers`: member ID -> "host:port" to dial (the advertised peer URL). `credentials`: how
  // peer channels are secured (nullptr: plaintext; tls/grpc_credentials.h for peer TLS).
  PeerTransport(uint64_t cluster_id, uint64_t self_id, std::map<uint64_t, std::string> peers,
                Deliver deliver, ProbeHandler probe,
                std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr);
  ~PeerTransport() override;

  void Send(raft::Message m) override;
  void Flush() override;
  // Handlers for the leader-side lease calls; set before the peer server starts.
  using KeepAliveHandler = std::function<absl::StatusOr<etcdserverpb::LeaseKeepAliveResponse>(
      const etcdserverpb::LeaseKeepAliveRequest&)>;
  using TimeToLiveHandler = std::function<absl::StatusOr<etcdserverpb::LeaseTimeToLiveResponse>(
      const etcdserverpb::LeaseTimeToLiveRequest&)>;
  void SetLeaseHandlers(KeepAliveHandler keep_alive, TimeToLiveHandler ttl) {
    keep_alive_ = std::move(keep_alive);
    ttl_ = std::move(ttl);
  }
  // Snapshot handling; set before the peer server starts. `source` writes the member's state
  // for message `m` to a file and returns its path (removed after sending). `verify` checks a
  // received file before it is delivered.
  using SnapshotSource = std::function<absl::StatusOr<std::string>(const raft::Message& m)>;
  using SnapshotVerify = std::function<absl::Status(const std::string& path)>;
  void SetSnapshotHandlers(SnapshotSource source, SnapshotVerify verify, std::string receive_dir) {
    snapshot_source_ = std::move(source);
    snapshot_verify_ = std::move(verify);
    receive_dir_ = std::move(receive_dir);
  }
  void Stop();
  // Plain-TCP message links (PeerLinks) instead of the gRPC stream, for peer URLs without TLS:
  // binds `listen` ("host:port" of each --listen-peer-urls), hands every connection that is
  // not a link to `grpc_handoff` (the peer gRPC server, which then has no port of its own) and
  // dials each peer. Messages to a peer that does not speak links still go over the gRPC
  // stream. Call once, before the node thread starts; the node thread then reads the links
  // (links()->Poll). Fails naming an address that cannot be bound.
  absl::Status StartLinks(const std::vector<std::string>& listen,
                          std::function<void(int fd, const std::string& peer)> grpc_handoff);
  PeerLinks* links() { return links_.get(); }
  // The channel to member `id` (nullptr for this member or an unknown one): one per peer, made
  // when the transport is built and shared by the message stream, snapshot transfers and the
  // lease calls forwarded to the leader.
  std::shared_ptr<grpc::Channel> ChannelTo(uint64_t id) const;
  // The service to register on the peer gRPC server.
  grpc::Service* service();

  uint64_t dropped_foreign_batches() const { return intake_->foreign_batches(); }

 private:
  class Service;
  class Stream;
  struct Peer {
    uint64_t id;
    std::string address;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<peer::Peer::Stub> stub;
    std::mutex mu;
    std::condition_variable cv;
    std::deque<raft::Message> queue;  // guarded by mu
    Stream* stream = nullptr;         // guarded by mu: the open stream, if any
    bool writing = false;             // guarded by mu: a write is in flight on `stream`
    bool broke = false;               // guarded by mu: the last stream failed (back off)
    std::thread thread;               // reopens the stream
    bool snapshot_running = false;    // guarded by mu
    grpc::ClientContext* snapshot_context = nullptr;  // guarded by mu
    std::thread snapshot_thread;
    metrics::Counter* sent_bytes = nullptr;     // etcd_network_peer_sent_bytes_total{To}
    metrics::Counter* sent_failures = nullptr;  // etcd_network_peer_sent_failures_total{To}
    metrics::Histogram* rtt = nullptr;          // etcd_network_peer_round_trip_time_seconds{To}
    uint64_t foreign_cluster_seen = 0;  // prober thread: the other cluster it last answered as
  };
  // Every kProbeInterval, one Probe call to each peer, timed (the round-trip histogram).
  static constexpr std::chrono::seconds kProbeInterval{5};
  void ProbeLoop();
  void ConnectLoop(Peer* p);
  // Takes up to kMaxBatch queued messages into `batch`. Needs p->mu.
  void FillBatch(Peer* p, peer::MessageBatch* batch);
  // Starts a write on p's stream if messages are queued and none is in flight.
  void MaybeStartWrite(Peer* p);
  void OnWriteDone(Peer* p, Stream* s, bool ok);
  void OnStreamDone();
  // Streams not yet done (their OnDone pending); Stop waits for zero.
  std::mutex streams_mu_;
  std::condition_variable streams_cv_;
  int live_streams_ = 0;  // guarded by streams_mu_
  void SendSnapshot(Peer* p, raft::Message m);
  absl::Status StreamSnapshot(Peer* p, const raft::Message& m, const std::string& path);

  uint64_t cluster_id_;
  uint64_t self_id_;
  Deliver deliver_;
  ProbeHandler probe_;
  KeepAliveHandler keep_alive_;
  TimeToLiveHandler ttl_;
  SnapshotSource snapshot_source_;
  SnapshotVerify snapshot_verify_;
  std::string receive_dir_;
  std::atomic<uint64_t> received_snapshots_{0};
  std::map<uint64_t, std::unique_ptr<Peer>> peers_;
  std::set<uint64_t> members_;  // every member, self included
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> unknown_probes_{0};
  std::unique_ptr<MessageIntake> intake_;  // every received batch passes it
  std::unique_ptr<PeerLinks> links_;       // set by StartLinks
  metrics::Counter* heartbeat_failures_ = nullptr;
  metrics::Histogram* snapshot_save_seconds_ = nullptr;  // a received snapshot, until fsynced
  std::mutex prober_mu_;
  std::condition_variable prober_cv_;
  std::thread prober_;
  // A received snapshot's fsync and check (a read of the whole file) run here, not on gRPC's
  // callback thread, which every call of the process shares (grpc_callback_threads.h).
  WorkerPool snapshot_checks_{1, "cf-snap-check"};
  std::unique_ptr<Service> service_;
};

// Asks the member at `address` whether `self_id` already joined cluster `cluster_id` (the
// wiped-member check at startup). Unavailable when it cannot be reached within the timeout.
absl::StatusOr<peer::ProbeResponse> ProbePeer(
    const std::string& address, uint64_t cluster_id, uint64_t self_id, int timeout_ms,
    std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr);

// Channel arguments for peer and client connections: large messages, keepalive.
grpc::ChannelArguments PeerChannelArguments();
// The one place a channel to a peer's address is made (PeerChannelArguments; `credentials`,
// nullptr for plaintext).
std::shared_ptr<grpc::Channel> DialPeer(const std::string& address,
                                        std::shared_ptr<grpc::ChannelCredentials> credentials);

}  // namespace chainfire::transport
