// HttpServer: the member's HTTP/1.1 listener (/metrics, /health, /version and the JSON gateway).
// One libevent loop thread owns every connection, so a long-lived response (a watch stream)
// does not hold a thread. Requests are parsed by Boost.Beast's HTTP parser; responses are
// written by its serializer. Limits refuse what would grow without bound: header bytes (431),
// body bytes (413), time to receive one request (slowloris: the connection is closed), time a
// keep-alive connection may sit idle, open connections, and bytes queued for a slow reader.
// With Options::tls every connection speaks HTTPS (OpenSSL through libevent's bufferevents).
//
// With Options::grpc_handoff the listener is a client port shared with gRPC, as etcd's cmux
// does it: a connection whose first bytes are the HTTP/2 client preface is handed (its socket)
// to the callback, which gives it to the gRPC server; anything else is HTTP/1.1 here.
//
// Routes: an exact path maps to a Handler, which runs on the loop thread and must return
// promptly (a bounded wait at most); a path prefix maps to an AsyncHandler, which gets an
// Exchange to answer from any thread, once or as a chunked stream. Unknown paths get 404;
// handlers answer methods they do not serve with 405 themselves.
//
// Thread-safety: Start and the destructor from one thread; Handlers run on the loop thread;
// Exchange methods are safe from any thread, also after the server is gone (they do nothing).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

struct event_base;
struct ssl_ctx_st;

namespace chainfire::http {

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string path;    // the target without its query
  std::string body;
  std::string peer;  // the client's address as gRPC writes it: "ipv4:127.0.0.1:5000"
  std::vector<std::pair<std::string, std::string>> headers;
  // The first header of that name (case-insensitive), or nullptr.
  const std::string* Header(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // more headers (e.g. Allow)
};

using Handler = std::function<Response(const Request&)>;

// The answer to one request, given later and from any thread: Reply once, or StartStream, any
// number of Send and End (a chunked response). Nothing else is read from the connection until
// the answer is complete. OnClose's callback runs once, on the loop thread, if the connection
// goes away (client closed, limit hit, server stopped) before the answer is complete.
class Exchange {
 public:
  virtual ~Exchange() = default;
  virtual void Reply(Response response) = 0;
  virtual void StartStream(int status, std::string content_type) = 0;
  virtual void Send(std::string chunk) = 0;
  virtual void End() = 0;
  virtual void OnClose(std::function<void()> callback) = 0;
};

using AsyncHandler = std::function<void(Request, std::shared_ptr<Exchange>)>;

class HttpServer {
 public:
  struct Options {
    size_t max_header_bytes = 16 * 1024;  // request line + headers; more: 431, closed
    size_t max_body_bytes = 64 * 1024;    // more: 413, closed
    int timeout_seconds = 10;             // to receive a whole request (slowloris: closed)
    int idle_timeout_seconds = 300;       // a keep-alive connection waiting for a request
    size_t max_connections = 16384;       // more are closed at once
    size_t max_queued_bytes = 64 << 20;   // answer bytes a slow reader may leave unread
    // HTTPS: the server context for each new connection (the current one, so certificates
    // rotate without a restart); empty: plain HTTP.
    std::function<std::shared_ptr<ssl_ctx_st>()> tls;
    // A shared client port: HTTP/2 connections are handed over (see above). Plain HTTP only.
    std::function<void(int fd, const std::string& peer)> grpc_handoff;
    // Path prefix -> handler answering through an Exchange (the JSON gateway).
    std::vector<std::pair<std::string, AsyncHandler>> prefix_routes;
  };

  // Listens on every "host:port" and starts the loop thread. Fails naming the address that
  // cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::vector<std::string>& host_ports, std::map<std::string, Handler> routes,
      Options options);
  // Stops the loop and joins its thread; open connections are closed (their OnClose run).
  ~HttpServer();

  class Impl;

 private:
  HttpServer() = default;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
};

}  // namespace chainfire::http
