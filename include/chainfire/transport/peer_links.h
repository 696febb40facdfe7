// PeerLinks: Raft messages between members over plain TCP connections that the node thread
// itself reads and writes (no gRPC completion queue, no thread hand-off per message), for
// peer URLs without TLS. gRPC keeps everything else on the same port: PeerLinks owns the peer
// listeners and hands every connection that does not open with the link preface to the peer
// gRPC server (snapshots, probes, lease calls, and message streams of members that have no
// links), as etcd's cmux shares its ports.
//
// Wire: the dialing member sends the 8-byte preface "CFLINK1\n", the listener answers
// "CFLINKOK"; then the dialer sends frames, each a 4-byte little-endian length and a
// peer.MessageBatch (at most kMaxFrameBytes), and the listener never sends again. One link per
// direction and peer: each member dials each peer for its own messages.
//
// Sending (node thread): Send queues, Flush writes one frame per peer with what was queued
// (one send() per peer; what the socket does not take waits for it to drain, bounded). While
// a peer's link is down its messages are held (bounded) until the dial that is under way ends;
// a failed dial or a broken link drops them (Raft retransmits). A peer whose port answers
// anything but the link preface's answer (a member without links) is marked `Legacy`: the
// caller sends its messages another way (the gRPC stream); the dialer tries again every
// kLegacyRetry.
// Receiving (node thread): Poll reads every readable link and returns the messages of whole
// frames that pass the intake's checks. A frame that cannot be parsed, or is too large, closes
// its link (logged); the member keeps serving.
// Threads: one acceptor (sorts new connections by their first bytes, a bounded wait each) and
// one dialer per peer; both sleep while links are up.
// Thread-safety: Send, Flush and Poll on one thread (the node thread); Legacy, fd() and the
// counters from any thread; Listen, Start and Stop from one controlling thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "chainfire/metrics/registry.h"
#include "chainfire/raft/types.h"
#include "chainfire/transport/message_intake.h"

namespace chainfire::transport {

class PeerLinks {
 public:
  static constexpr char kPreface[] = "CFLINK1\n";
  static constexpr char kPrefaceAnswer[] = "CFLINKOK";
  static constexpr size_t kPrefaceBytes = 8;
  static constexpr uint32_t kMaxFrameBytes = 64 << 20;

  struct PeerOptions {
    std::string address;                        // "host:port" to dial
    metrics::Counter* sent_bytes = nullptr;     // optional
    metrics::Counter* sent_failures = nullptr;  // optional
  };
  struct Options {
    uint64_t cluster_id = 0;
    uint64_t self_id = 0;
    std::vector<std::string> listen;  // "host:port" (port 0: any; see bound_ports)
    // Connections that do not open with the preface (an HTTP/2 client): the socket is the
    // callee's from then on.
    std::function<void(int fd, const std::string& peer)> other_connection;
    MessageIntake* intake = nullptr;                 // checks received batches; must outlive this
    metrics::Counter* heartbeat_failures = nullptr;  // optional
    std::chrono::milliseconds legacy_retry{std::chrono::seconds(30)};
  };

  // Binds the listeners and starts the acceptor; dials nobody yet (see Start). Fails naming an
  // address that cannot be bound.
  static absl::StatusOr<std::unique_ptr<PeerLinks>> Listen(Options options);
  ~PeerLinks();  // Stop()

  // The port each listener got, in the order of Options::listen.
  std::vector<int> bound_ports() const;
  // Starts dialing every peer (id -> options); once.
  void Start(std::map<uint64_t, PeerOptions> peers);
  // Closes every link and joins the threads. Idempotent.
  void Stop();

  // A descriptor that is readable while Poll has work (link data, new links): watch it in
  // the node thread's wait.
  int fd() const { return epoll_fd_; }

  // Node thread only.
  void Send(raft::Message m);
  void Flush();
  // Adopts new links, reads what arrived and appends the received messages to `out`.
  void Poll(std::vector<raft::Message>* out);
  // The peer's port does not speak links: send its messages another way.
  bool Legacy(uint64_t peer) const;

  // For tests: links currently up (dialed and accepted).
  int dialed_links() const { return dialed_up_.load(); }
  int accepted_links() const { return accepted_up_.load(); }

  class Impl;

 private:
  explicit PeerLinks(Options options);
  Options options_;
  int epoll_fd_ = -1;
  std::atomic<int> dialed_up_{0};
  std::atomic<int> accepted_up_{0};
  std::unique_ptr<Impl> impl_;
};

}  // namespace chainfire::transport
