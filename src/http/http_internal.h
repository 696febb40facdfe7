// Internals of HttpServer shared by its two files: the loop's state (Impl), one HTTP/1.1
// connection (Connection), and the poster that moves work from any thread onto the loop.
#pragma once

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <boost/beast/http.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "chainfire/http/http_server.h"

namespace chainfire::http {

// Runs closures on the loop thread, in order. After Close every Post is dropped (returns
// false). Thread-safe.
class LoopPoster {
 public:
  explicit LoopPoster(event_base* base);
  ~LoopPoster();
  bool Post(std::function<void()> work);
  // Drops what is queued and refuses more; frees the loop's wake-up event. Loop thread (or
  // after the loop stopped).
  void Close();

 private:
  static void OnWake(evutil_socket_t, short, void* self);
  std::mutex mu_;
  bool closed_ = false;                       // guarded by mu_
  std::vector<std::function<void()>> queue_;  // guarded by mu_
  event* wake_ = nullptr;
};

class Connection;

class HttpServer::Impl {
 public:
  Impl(std::map<std::string, Handler> routes, Options options, event_base* base);
  ~Impl();  // loop thread stopped: closes every connection, then the listeners and the loop

  absl::Status Listen(const std::string& host_port);
  // A new socket (accepted, or sniffed as HTTP/1.1): served here from now on.
  void Serve(int fd, std::string peer);
  Connection* Find(uint64_t id);
  void Destroy(uint64_t id);
  // The handler for a path: exact route, else the longest prefix route, else none.
  const Handler* ExactRoute(const std::string& path) const;
  const AsyncHandler* PrefixRoute(const std::string& path) const;

  const Options options;
  event_base* const base;
  const std::shared_ptr<LoopPoster> poster;

 private:
  static void OnAccept(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int len, void* self);
  static void OnAcceptError(evconnlistener*, void* self);
  static void OnResume(evutil_socket_t, short, void* self);
  void Sniff(int fd, std::string peer);

  std::map<std::string, Handler> routes_;
  std::vector<evconnlistener*> listeners_;
  event* resume_ = nullptr;  // re-enables accepting after running out of descriptors
  std::map<uint64_t, std::unique_ptr<Connection>> connections_;
  uint64_t next_id_ = 1;
  size_t sniffing_ = 0;
};

class ExchangeImpl;

// One HTTP/1.1 connection: parses requests one at a time, answers each (at once, later, or as a
// chunked stream), and closes on a parse error, a limit, the peer's close, or "Connection:
// close". Loop thread only.
class Connection {
 public:
  Connection(HttpServer::Impl* server, uint64_t id, bufferevent* bev, std::string peer);
  ~Connection();  // frees the socket; a pending Exchange learns of the close
  void Start();

  // From the Exchange, on the loop thread; `serial` names the request (stale ones ignored).
  void Reply(uint64_t serial, Response response);
  void StartStream(uint64_t serial, int status, const std::string& content_type);
  void Send(uint64_t serial, const std::string& chunk);
  void End(uint64_t serial);

 private:
  enum class State { kIdle, kReading, kAnswering, kStreaming, kClosing, kLingering };
  using Parser = boost::beast::http::request_parser<boost::beast::http::string_body>;

  static void OnRead(bufferevent*, void* self);
  static void OnWrite(bufferevent*, void* self);
  static void OnEvent(bufferevent*, short what, void* self);
  static void OnTimer(evutil_socket_t, short, void* self);
  void Process();  // parses what has arrived while a request may be read
  void Dispatch();
  void Write(const Response& response);
  void Finish();  // the answer is complete: next request, or close
  void Arm(int seconds);
  void Close();  // destroys this object: return at once

  HttpServer::Impl* const server_;
  const uint64_t id_;
  bufferevent* const bev_;
  const std::string peer_;
  event* timer_;
  State state_ = State::kIdle;
  std::optional<Parser> parser_;
  bool continue_sent_ = false;
  bool keep_alive_ = true;
  bool head_ = false;
  uint64_t serial_ = 0;
  std::shared_ptr<ExchangeImpl> exchange_;  // while an answer is pending
};

}  // namespace chainfire::http
