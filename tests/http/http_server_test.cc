// HttpServer over real loopback sockets: routing, keep-alive and pipelining, the limits
// (431/413/slow clients), 100-continue, answers given later and streamed, a client that goes
// away, and the shared client port's split between HTTP/2 (handed over) and HTTP/1.1.
#include "chainfire/http/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace chainfire::http {
namespace {

int FreePort() {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  close(s);
  return ntohs(a.sin_port);
}

int Connect(int port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  return s;
}

void SendAll(int s, const std::string& data) {
  size_t at = 0;
  while (at < data.size()) {
    const ssize_t n = send(s, data.data() + at, data.size() - at, MSG_NOSIGNAL);
    if (n <= 0) return;
    at += static_cast<size_t>(n);
  }
}

// Reads until `done(bytes)` holds, the peer closes, or 5 s pass.
std::string ReadUntil(int s, const std::function<bool(const std::string&)>& done) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!done(out) && std::chrono::steady_clock::now() < deadline) {
    pollfd p{s, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buf[65536];
    const ssize_t n = recv(s, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string ReadAll(int s) {
  return ReadUntil(s, [](const std::string&) { return false; });
}

size_t Count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

std::map<std::string, Handler> EchoRoutes() {
  std::map<std::string, Handler> routes;
  routes["/echo"] = [](const Request& r) {
    Response resp;
    resp.body = r.method + " " + r.path + " " + r.body;
    return resp;
  };
  return routes;
}

class Server {
 public:
  explicit Server(HttpServer::Options options = {},
                  std::map<std::string, Handler> routes = EchoRoutes()) {
    port = FreePort();
    auto s = HttpServer::Start({"127.0.0.1:" + std::to_string(port)}, std::move(routes),
                               std::move(options));
    EXPECT_TRUE(s.ok()) << s.status();
    server = std::move(*s);
  }
  int port;
  std::unique_ptr<HttpServer> server;
};

TEST(HttpServer, AnswersRoutesKeepsConnectionsAliveAndAnswersPipelinedRequestsInOrder) {
  Server s;
  int c = Connect(s.port);
  SendAll(c, "POST /echo?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\none");
  std::string first = ReadUntil(c, [](const std::string& b) { return b.find("one") != b.npos; });
  EXPECT_EQ(first.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << first;
  EXPECT_NE(first.find("POST /echo one"), std::string::npos);
  // Same connection, two requests at once, then one asking to close.
  SendAll(c,
          "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\ntwo"
          "GET /nothing HTTP/1.1\r\nHost: a\r\n\r\n"
          "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nthree");
  const std::string rest = ReadAll(c);  // ends: the server closed after the third
  EXPECT_LT(rest.find("two"), rest.find("404 page not found"));
  EXPECT_LT(rest.find("404 page not found"), rest.find("three"));
  EXPECT_EQ(Count(rest, "HTTP/1.1 "), 3u);
  close(c);
}

TEST(HttpServer, RefusesOversizedHeadersAndBodiesWithTheirStatusAndGarbageWith400) {
  HttpServer::Options options;
  options.max_header_bytes = 1024;
  options.max_body_bytes = 100;
  Server s(options);
  int c = Connect(s.port);
  SendAll(c, "GET /echo HTTP/1.1\r\nX: " + std::string(4000, 'a') + "\r\n\r\n");
  EXPECT_EQ(ReadAll(c).rfind("HTTP/1.1 431", 0), 0u);
  close(c);
  // The client is still sending its body: it gets the answer, not a reset.
  c = Connect(s.port);
  SendAll(c, "POST /echo HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" + std::string(100000, 'b'));
  EXPECT_EQ(ReadAll(c).rfind("HTTP/1.1 413", 0), 0u);
  close(c);
  c = Connect(s.port);
  SendAll(c, "GARBAGE\r\n\r\n");
  EXPECT_EQ(ReadAll(c).rfind("HTTP/1.1 400", 0), 0u);
  close(c);
}

TEST(HttpServer, SaysContinueToClientsThatWaitForItBeforeSendingABody) {
  Server s;
  int c = Connect(s.port);
  SendAll(c, "POST /echo HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  std::string got = ReadUntil(c, [](const std::string& b) { return b.find("\r\n\r\n") != b.npos; });
  EXPECT_EQ(got, "HTTP/1.1 100 Continue\r\n\r\n");
  SendAll(c, "body");
  got = ReadUntil(c, [](const std::string& b) { return b.find("body") != b.npos; });
  EXPECT_NE(got.find("POST /echo body"), std::string::npos);
  close(c);
}

TEST(HttpServer, DropsARequestThatDoesNotArriveInTimeWhileServingOthers) {
  HttpServer::Options options;
  options.timeout_seconds = 1;
  Server s(options);
  int slow = Connect(s.port);
  SendAll(slow, "GET /echo HTTP/1.1\r\n");  // never finished
  int fast = Connect(s.port);
  SendAll(fast, "GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_NE(ReadAll(fast).find("GET /echo"), std::string::npos);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(ReadAll(slow), "");  // closed without an answer
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  close(slow);
  close(fast);
}

// An async route that answers from another thread, or streams until told to stop.
struct Async {
  std::mutex mu;
  std::condition_variable cv;
  std::shared_ptr<Exchange> exchange;
  bool closed = false;
  std::shared_ptr<Exchange> Wait() {
    std::unique_lock lock(mu);
    cv.wait_for(lock, std::chrono::seconds(5), [&] { return exchange != nullptr; });
    return exchange;
  }
  bool WaitClosed() {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(5), [&] { return closed; });
  }
};

HttpServer::Options AsyncOptions(Async* a) {
  HttpServer::Options options;
  options.prefix_routes = {{"/later/", [a](Request, std::shared_ptr<Exchange> e) {
                              e->OnClose([a] {
                                std::lock_guard lock(a->mu);
                                a->closed = true;
                                a->cv.notify_all();
                              });
                              std::lock_guard lock(a->mu);
                              a->exchange = std::move(e);
                              a->cv.notify_all();
                            }}};
  return options;
}

TEST(HttpServer, AnswersLaterFromAnotherThreadAndStreamsChunksUntilTheClientLeaves) {
  Async a;
  Server s(AsyncOptions(&a));
  int c = Connect(s.port);
  SendAll(c, "POST /later/x HTTP/1.1\r\n\r\n");
  std::shared_ptr<Exchange> e = a.Wait();
  ASSERT_NE(e, nullptr);
  std::thread([e] {
    e->StartStream(200, "application/json");
    e->Send("{\"n\":1}\n");
    e->Send("{\"n\":2}\n");
  }).join();
  std::string got = ReadUntil(c, [](const std::string& b) { return b.find("\"n\":2") != b.npos; });
  EXPECT_NE(got.find("Transfer-Encoding: chunked"), std::string::npos);
  EXPECT_NE(got.find("8\r\n{\"n\":1}\n\r\n"), std::string::npos) << got;
  EXPECT_FALSE(a.closed);
  close(c);  // the client goes away mid-stream
  EXPECT_TRUE(a.WaitClosed());
  e->Send("ignored");  // nothing left to write to: no effect
  e->End();
}

TEST(HttpServer, AnExchangeOutlivingItsServerDoesNothingAndItsCloseCallbackRuns) {
  Async a;
  auto s = std::make_unique<Server>(AsyncOptions(&a));
  int c = Connect(s->port);
  SendAll(c, "POST /later/y HTTP/1.1\r\n\r\n");
  std::shared_ptr<Exchange> e = a.Wait();
  ASSERT_NE(e, nullptr);
  s.reset();  // stops the server: the pending exchange is closed
  EXPECT_TRUE(a.WaitClosed());
  e->Reply(Response{});
  bool late = false;
  e->OnClose([&late] { late = true; });  // already closed: runs at once
  EXPECT_TRUE(late);
  close(c);
}

TEST(HttpServer, ASharedPortHandsHttp2AndSilentConnectionsOverAndServesHttp1Itself) {
  std::mutex mu;
  std::vector<std::pair<int, std::string>> handed;
  HttpServer::Options options;
  options.grpc_handoff = [&](int fd, const std::string& peer) {
    std::lock_guard lock(mu);
    handed.emplace_back(fd, peer);
  };
  Server s(options);
  auto handed_count = [&] {
    std::lock_guard lock(mu);
    return handed.size();
  };
  auto wait_for = [&](size_t n) {
    for (int i = 0; i < 500 && handed_count() < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return handed_count();
  };
  int h2 = Connect(s.port);
  SendAll(h2, std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
  EXPECT_EQ(wait_for(1), 1u);
  {
    std::lock_guard lock(mu);
    // The handed-over socket still holds the preface (only peeked at).
    char buf[64];
    const ssize_t n = recv(handed[0].first, buf, sizeof(buf), MSG_DONTWAIT);
    EXPECT_EQ(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0),
              "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    EXPECT_EQ(handed[0].second.rfind("ipv4:127.0.0.1:", 0), 0u);
  }
  int silent = Connect(s.port);  // says nothing: an HTTP/2 client waiting for SETTINGS
  EXPECT_EQ(wait_for(2), 2u);
  int h1 = Connect(s.port);
  SendAll(h1, "GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_NE(ReadAll(h1).find("GET /echo"), std::string::npos);
  EXPECT_EQ(handed_count(), 2u);
  for (const auto& [fd, peer] : handed) close(fd);
  close(h2);
  close(silent);
  close(h1);
}

}  // namespace
}  // namespace chainfire::http
