// Flags-level membership parsing and ID derivation; the peer transport over real gRPC.
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>

#include "chainfire/server/auto_compactor.h"
#include "chainfire/server/cluster_config.h"
#include "chainfire/transport/peer_transport.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace chainfire {
namespace {

TEST(ClusterConfig, IdsAreDerivedDeterministically) {
  const std::string ic = "a=http://127.0.0.1:1,b=http://127.0.0.1:2,c=http://127.0.0.1:3";
  auto x = server::ParseInitialCluster(ic, "tok");
  auto y = server::ParseInitialCluster(ic, "tok");
  ASSERT_TRUE(x.ok()) << x.status();
  EXPECT_EQ(x->cluster_id, y->cluster_id);
  EXPECT_EQ(x->members[1].id, y->members[1].id);
  EXPECT_NE(x->members[0].id, x->members[1].id);
  // Another token or another member set gives another cluster.
  EXPECT_NE(server::ParseInitialCluster(ic, "other")->cluster_id, x->cluster_id);
  EXPECT_NE(server::ParseInitialCluster(ic + ",d=http://127.0.0.1:4", "tok")->cluster_id,
            x->cluster_id);
  // Order of the flag does not matter.
  auto z = server::ParseInitialCluster(
      "c=http://127.0.0.1:3,a=http://127.0.0.1:1,b=http://127.0.0.1:2", "tok");
  EXPECT_EQ(z->cluster_id, x->cluster_id);
  EXPECT_EQ(z->Find("a")->id, x->Find("a")->id);
  EXPECT_EQ(server::HexId(0x1234abcd), "1234abcd");
}

TEST(ClusterConfig, BadFlagsAreNamed) {
  auto s = server::ParseInitialCluster("a=ftp://127.0.0.1:1", "t");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("expected a URL like http://"), std::string::npos);
  // https:// peers parse (peer TLS); the daemon then requires the peer TLS files.
  s = server::ParseInitialCluster("a=https://127.0.0.1:1", "t");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->members[0].DialAddress(), "127.0.0.1:1");
  s = server::ParseInitialCluster("a", "t");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("--initial-cluster"), std::string::npos);
  s = server::ParseInitialCluster("a=http://127.0.0.1:1,b=http://127.0.0.1:1", "t");
  EXPECT_FALSE(s.ok()) << "a peer URL listed twice";
  auto urls = server::ParseUrls("http://127.0.0.1:99999", "--listen-client-urls");
  ASSERT_FALSE(urls.ok());
  EXPECT_NE(urls.status().message().find("--listen-client-urls"), std::string::npos);
  EXPECT_EQ(server::HostPort("http://10.0.0.1:2379/"), "10.0.0.1:2379");
}

TEST(PeerTransport, MessageRoundTrip) {
  raft::Message m;
  m.type = raft::MessageType::kApp;
  m.from = 1;
  m.to = 2;
  m.term = 3;
  m.log_term = 2;
  m.index = 9;
  m.commit = 8;
  m.entries = {{3, 10, std::string("a\0b", 3)}};
  m.snapshot = raft::Snapshot{{7, 2}, "snap"};
  m.context = "ctx";
  const raft::Message back = transport::FromProto(transport::ToProto(m));
  EXPECT_EQ(back.type, m.type);
  EXPECT_EQ(back.entries, m.entries);
  EXPECT_EQ(back.snapshot, m.snapshot);
  EXPECT_EQ(back.context, m.context);
  EXPECT_EQ(back.commit, 8u);
}

// Two transports on loopback: messages of our cluster arrive; another cluster's are dropped.
TEST(PeerTransport, DeliversOwnClusterAndDropsForeignBatches) {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<raft::Message> received;
  auto probe = [](const peer::ProbeRequest&) { return peer::ProbeResponse(); };
  int port = 0;
  transport::PeerTransport receiver(
      /*cluster_id=*/77, /*self_id=*/2, {{1, "127.0.0.1:9"}},
      [&](std::vector<raft::Message> msgs) {
        std::lock_guard<std::mutex> l(mu);
        for (auto& m : msgs) received.push_back(std::move(m));
        cv.notify_all();
      },
      probe);
  grpc::ServerBuilder b;
  b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  b.RegisterService(receiver.service());
  auto server = b.BuildAndStart();
  ASSERT_NE(server, nullptr);
  const std::string address = "127.0.0.1:" + std::to_string(port);

  transport::PeerTransport foreign(/*cluster_id=*/99, /*self_id=*/1, {{2, address}},
                                   [](std::vector<raft::Message>) {}, probe);
  transport::PeerTransport ours(/*cluster_id=*/77, /*self_id=*/1, {{2, address}},
                                [](std::vector<raft::Message>) {}, probe);
  raft::Message m;
  m.type = raft::MessageType::kHeartbeat;
  m.from = 1;
  m.to = 2;
  m.term = 5;
  // Peer messages are best effort (a batch in flight when a stream breaks is lost, as Raft
  // allows): each side resends until the receiver has seen what it checks.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  {
    std::unique_lock<std::mutex> l(mu);
    while (receiver.dropped_foreign_batches() == 0 && std::chrono::steady_clock::now() < deadline) {
      l.unlock();
      foreign.Send(m);
      foreign.Flush();  // Send holds messages until Flush
      l.lock();
      cv.wait_for(l, std::chrono::milliseconds(200));
    }
  }
  EXPECT_GE(receiver.dropped_foreign_batches(), 1u);
  raft::Message forged = m;  // from a member the receiver does not know: dropped
  forged.from = 7;
  m.term = 6;
  {
    std::unique_lock<std::mutex> l(mu);
    while (received.empty() && std::chrono::steady_clock::now() < deadline) {
      l.unlock();
      ours.Send(forged);
      ours.Send(m);
      ours.Flush();
      l.lock();
      cv.wait_for(l, std::chrono::milliseconds(200));
    }
    ASSERT_FALSE(received.empty()) << "our cluster's message never arrived";
    for (const raft::Message& r : received) {
      EXPECT_EQ(r.from, 1u) << "only our cluster's valid message is delivered";
      EXPECT_EQ(r.term, 6u);
    }
  }
  auto resp = transport::ProbePeer(address, 77, 1, 2000);
  EXPECT_TRUE(resp.ok());
  foreign.Stop();
  ours.Stop();
  receiver.Stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
}

TEST(PeerTransport, ValidatesMessagesBeforeRaftSeesThem) {
  const std::set<uint64_t> members = {1, 2, 3};
  auto append = [] {
    peer::RaftMessage m;
    m.set_type(static_cast<uint32_t>(raft::MessageType::kApp));
    m.set_from(2);
    m.set_to(1);
    m.set_term(3);
    m.set_index(4);
    m.set_log_term(2);
    for (uint64_t i = 5; i <= 6; ++i) {
      auto* e = m.add_entries();
      e->set_index(i);
      e->set_term(3);
    }
    return m;
  };
  EXPECT_TRUE(transport::ValidatePeerMessage(append(), 1, members).ok());
  auto expect_refused = [&](peer::RaftMessage m, const std::string& why) {
    const absl::Status s = transport::ValidatePeerMessage(m, 1, members);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << why;
    EXPECT_NE(s.message().find(why), std::string::npos) << s;
  };
  auto m = append();
  m.set_type(99);
  expect_refused(m, "unknown message type 99");
  m = append();
  m.set_to(2);
  expect_refused(m, "for another member");
  m = append();
  m.set_from(9);
  expect_refused(m, "from non-member 9");
  m = append();
  m.set_from(1);
  expect_refused(m, "from non-member 1");
  m = append();
  m.mutable_entries(1)->set_index(7);  // a gap
  expect_refused(m, "out of order");
  m = append();
  m.mutable_entries(0)->set_term(4);  // newer than the message's term
  expect_refused(m, "out of order");
  m = append();
  m.set_type(static_cast<uint32_t>(raft::MessageType::kHeartbeat));
  expect_refused(m, "carries none");
  m = append();
  m.clear_entries();
  m.set_type(static_cast<uint32_t>(raft::MessageType::kSnap));
  expect_refused(m, "snapshot");
  m.mutable_snapshot()->set_index(0);
  expect_refused(m, "snapshot at index 0");
  m.mutable_snapshot()->set_index(9);
  expect_refused(m, "of term 0");
  m.mutable_snapshot()->set_term(2);
  m.mutable_snapshot()->set_index(9);
  EXPECT_TRUE(transport::ValidatePeerMessage(m, 1, members).ok());
}

}  // namespace
}  // namespace chainfire

namespace chainfire::server {
namespace {

TEST(AutoCompaction, FlagsParseAsEtcd) {
  auto off = ParseAutoCompaction("periodic", "0");
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(off->mode, AutoCompactionPolicy::Mode::kOff);
  auto hours = ParseAutoCompaction("periodic", "2");
  ASSERT_TRUE(hours.ok());
  EXPECT_EQ(hours->period, std::chrono::hours(2));
  EXPECT_EQ(ParseAutoCompaction("periodic", "30m")->period, std::chrono::minutes(30));
  EXPECT_EQ(ParseAutoCompaction("periodic", "90s")->period, std::chrono::seconds(90));
  auto revs = ParseAutoCompaction("revision", "1000");
  ASSERT_TRUE(revs.ok());
  EXPECT_EQ(revs->mode, AutoCompactionPolicy::Mode::kRevision);
  EXPECT_EQ(revs->revisions, 1000);
  EXPECT_FALSE(ParseAutoCompaction("revision", "1h").ok());
  EXPECT_FALSE(ParseAutoCompaction("periodic", "abc").ok());
  EXPECT_FALSE(ParseAutoCompaction("sometimes", "1").ok());
}

}  // namespace
}  // namespace chainfire::server
