// HttpServer: the member's small HTTP/1.1 listener (/metrics, /health), on libevent's evhttp
// (Debian's libevent-dev): one event-loop thread serves every connection, so a long-lived
// response does not hold a thread. evhttp parses the requests; limits on header size, body
// size and time per connection refuse oversized or slow (slowloris) requests with 4xx or a
// close. With Options::tls, every port speaks HTTPS (OpenSSL through libevent's bufferevents).
//
// Routes map a path to a handler, which runs on the loop thread and gets the method and path:
// unknown paths get 404, and a handler answers a method it does not serve with 405 itself.
// Handlers must return promptly (a bounded wait at most): they hold up the loop.
//
// Thread-safety: Start and the destructor from one thread; handlers run on the loop thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

struct event_base;
struct bufferevent;
struct ssl_ctx_st;
struct evhttp_request;
struct evhttp;

namespace chainfire::http {

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string path;
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // more headers (e.g. Allow)
};

using Handler = std::function<Response(const Request&)>;

class HttpServer {
 public:
  struct Options {
    size_t max_header_bytes = 16 * 1024;  // request line + headers; more: 400/413, closed
    size_t max_body_bytes = 64 * 1024;
    int timeout_seconds = 10;  // a request not complete by then (slowloris) is dropped
    // HTTPS: the server context for each new connection (the current one, so certificates
    // rotate without a restart); empty: plain HTTP.
    std::function<std::shared_ptr<ssl_ctx_st>()> tls;
  };

  // Listens on every "host:port" and starts the loop thread. Fails naming the address that
  // cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::vector<std::string>& host_ports, std::map<std::string, Handler> routes,
      Options options);
  // Stops the loop and joins its thread; open connections are closed.
  ~HttpServer();

 private:
  HttpServer() = default;
  static void OnRequest(evhttp_request* req, void* self);
  static bufferevent* NewTlsConnection(event_base* base, void* self);

  std::map<std::string, Handler> routes_;
  Options options_;
  event_base* base_ = nullptr;
  evhttp* http_ = nullptr;
  std::thread thread_;
};

}  // namespace chainfire::http
