// PeerLinks over real loopback sockets, driven the way the node thread drives them (one thread
// waits on the links' descriptor, then Polls), with a real gRPC server on the same port.
#include "chainfire/transport/peer_links.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "chainfire/common/event_wait.h"
#include "chainfire/transport/peer_transport.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/server_posix.h"
#include "gtest/gtest.h"

namespace chainfire::transport {
namespace {

using Clock = std::chrono::steady_clock;

peer::ProbeResponse Probe(const peer::ProbeRequest&) { return peer::ProbeResponse(); }

// A member's transport with links on 127.0.0.1:<any>, its peer gRPC server fed the other
// connections, and a node-thread stand-in: Pump polls its links.
struct Member {
  Member(uint64_t cluster, uint64_t self, std::map<uint64_t, std::string> peers, bool links = true,
         int port = 0) {
    transport = std::make_unique<PeerTransport>(
        cluster, self, std::move(peers),
        [this](std::vector<raft::Message> m) {
          std::lock_guard<std::mutex> l(mu);
          for (auto& x : m) over_grpc.push_back(std::move(x));
        },
        &Probe);
    grpc::ServerBuilder b;
    b.RegisterService(transport->service());
    if (!links)
      b.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(),
                         &this->port);
    server = b.BuildAndStart();
    if (links) {
      absl::Status s = transport->StartLinks({"127.0.0.1:" + std::to_string(port)},
                                             [srv = server.get()](int fd, const std::string&) {
                                               grpc::AddInsecureChannelFromFd(srv, fd);
                                             });
      EXPECT_TRUE(s.ok()) << s;
      if (s.ok()) {
        this->port = transport->links()->bound_ports()[0];
        wait.Watch(transport->links()->fd());
      }
    }
  }
  ~Member() {
    transport->Stop();
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }
  // One turn of the node thread: wait up to `ms` for the links, then read them.
  void Pump(int ms) {
    if (transport->links() == nullptr) return;
    wait.Wait(ms);
    transport->links()->Poll(&over_links);
  }
  size_t grpc_count() {
    std::lock_guard<std::mutex> l(mu);
    return over_grpc.size();
  }

  std::unique_ptr<PeerTransport> transport;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  EventWait wait;
  std::vector<raft::Message> over_links;
  std::mutex mu;
  std::vector<raft::Message> over_grpc;  // guarded by mu
};

// Pumps every member until `done` or 20 s; returns `done()`.
bool PumpUntil(std::vector<Member*> members, const std::function<bool()>& done) {
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (!done() && Clock::now() < deadline) {
    for (Member* m : members) m->Pump(10);
  }
  return done();
}

raft::Message Heartbeat(uint64_t from, uint64_t to, uint64_t commit) {
  raft::Message m;
  m.type = raft::MessageType::kHeartbeat;
  m.from = from;
  m.to = to;
  m.term = 3;
  m.commit = commit;
  return m;
}

TEST(PeerLinks, CarryBatchesInOrderAndShareThePortWithGrpc) {
  Member b(77, 2, {{1, "127.0.0.1:9"}});
  Member a(77, 1, {{2, b.address()}});
  ASSERT_TRUE(PumpUntil({&a, &b}, [&] {
    return a.transport->links()->dialed_links() == 1 && b.transport->links()->accepted_links() == 1;
  }));
  uint64_t next = 0;
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 50; ++i) a.transport->Send(Heartbeat(1, 2, next++));
    a.transport->Flush();
    a.Pump(0);
  }
  ASSERT_TRUE(PumpUntil({&a, &b}, [&] { return b.over_links.size() == next; }))
      << b.over_links.size() << " of " << next;
  for (uint64_t i = 0; i < next; ++i) {
    EXPECT_EQ(b.over_links[i].commit, i);
    EXPECT_EQ(b.over_links[i].from, 1u);
  }
  EXPECT_EQ(b.grpc_count(), 0u) << "the messages went over the link, not the gRPC stream";
  // The same port still serves gRPC (the probe a starting member makes).
  auto probe = ProbePeer(b.address(), 77, 1, 2000);
  EXPECT_TRUE(probe.ok()) << probe.status();

  // Another cluster's member reaches the link but its batches are dropped.
  Member foreign(99, 1, {{2, b.address()}});
  ASSERT_TRUE(PumpUntil({&foreign, &b}, [&] {
    foreign.transport->Send(Heartbeat(1, 2, 1000));
    foreign.transport->Flush();
    return b.transport->dropped_foreign_batches() > 0;
  }));
  EXPECT_EQ(b.over_links.size(), next);
}

TEST(PeerLinks, HeldWhileDialingAndRedialedAfterThePeerRestarts) {
  auto b = std::make_unique<Member>(77, 2, std::map<uint64_t, std::string>{{1, "127.0.0.1:9"}});
  const int port = b->port;
  Member a(77, 1, {{2, b->address()}});
  // Sent before the link is up: held until the dial ends, then sent.
  a.transport->Send(Heartbeat(1, 2, 1));
  a.transport->Flush();
  ASSERT_TRUE(PumpUntil({&a, b.get()}, [&] { return b->over_links.size() == 1; }));
  b.reset();  // the peer goes away: the link breaks
  ASSERT_TRUE(PumpUntil({&a}, [&] { return a.transport->links()->dialed_links() == 0; }));
  b = std::make_unique<Member>(77, 2, std::map<uint64_t, std::string>{{1, "127.0.0.1:9"}},
                               /*links=*/true, port);
  ASSERT_EQ(b->port, port);
  ASSERT_TRUE(PumpUntil({&a, b.get()}, [&] {
    a.transport->Send(Heartbeat(1, 2, 2));
    a.transport->Flush();
    return !b->over_links.empty();
  }));
  EXPECT_EQ(b->over_links.back().commit, 2u);
}

TEST(PeerLinks, APeerWithoutLinksGetsItsMessagesOverTheGrpcStream) {
  Member b(77, 2, {{1, "127.0.0.1:9"}}, /*links=*/false);
  Member a(77, 1, {{2, b.address()}});
  ASSERT_TRUE(PumpUntil({&a}, [&] {
    a.transport->Send(Heartbeat(1, 2, 5));
    a.transport->Flush();
    return b.grpc_count() > 0;
  }));
  EXPECT_TRUE(a.transport->links()->Legacy(2));
  EXPECT_EQ(a.transport->links()->dialed_links(), 0);
}

// A raw connection to a member's peer port: preface, answer, then frames.
class RawLink {
 public:
  explicit RawLink(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawLink() { close(fd_); }
  bool Open() {
    char answer[PeerLinks::kPrefaceBytes] = {};
    return connected_ && Write(std::string(PeerLinks::kPreface, PeerLinks::kPrefaceBytes)) &&
           recv(fd_, answer, sizeof answer, MSG_WAITALL) == sizeof answer &&
           std::memcmp(answer, PeerLinks::kPrefaceAnswer, sizeof answer) == 0;
  }
  bool Write(const std::string& bytes) {
    return send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  static std::string Frame(const std::string& body, uint32_t length) {
    std::string f(4, '\0');
    for (int i = 0; i < 4; ++i) f[i] = static_cast<char>((length >> (8 * i)) & 0xff);
    return f + body;
  }
  // Whether the member closed the connection: reads (skipping what it sent first, e.g. gRPC's
  // HTTP/2 settings) see the end, each within its 5 s timeout.
  bool ClosedByPeer() {
    char buf[4096];
    for (;;) {
      const ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return n == 0;
    }
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

TEST(PeerLinks, ABadFrameClosesItsLinkAndTheMemberKeepsServing) {
  Member b(77, 2, {{1, "127.0.0.1:9"}});
  std::thread pump([&] {
    const auto end = Clock::now() + std::chrono::seconds(30);
    while (Clock::now() < end && b.over_links.empty()) b.Pump(10);
  });
  {
    RawLink oversized(b.port);
    ASSERT_TRUE(oversized.Open());
    EXPECT_TRUE(oversized.Write(RawLink::Frame("", PeerLinks::kMaxFrameBytes + 1)));
    EXPECT_TRUE(oversized.ClosedByPeer()) << "a frame over the limit closes the link";
  }
  {
    RawLink garbage(b.port);
    ASSERT_TRUE(garbage.Open());
    const std::string junk = "\xff\xff\xff\xff\xff";
    EXPECT_TRUE(garbage.Write(RawLink::Frame(junk, static_cast<uint32_t>(junk.size()))));
    EXPECT_TRUE(garbage.ClosedByPeer()) << "a frame that is not a batch closes the link";
  }
  {
    RawLink neither(b.port);  // neither a link nor HTTP/2: gRPC gets it and closes it
    EXPECT_TRUE(neither.Write("GET / HTTP/1.1\r\n\r\n"));
    EXPECT_TRUE(neither.ClosedByPeer());
  }
  RawLink good(b.port);
  ASSERT_TRUE(good.Open());
  peer::MessageBatch batch;
  batch.set_cluster_id(77);
  batch.set_from(1);
  *batch.add_messages() = ToProto(Heartbeat(1, 2, 42));
  const std::string body = batch.SerializeAsString();
  EXPECT_TRUE(good.Write(RawLink::Frame(body, static_cast<uint32_t>(body.size()))));
  pump.join();
  ASSERT_EQ(b.over_links.size(), 1u) << "a good link still delivers after the bad ones";
  EXPECT_EQ(b.over_links[0].commit, 42u);
}

}  // namespace
}  // namespace chainfire::transport
