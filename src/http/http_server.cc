#include "chainfire/http/http_server.h"

#include <arpa/inet.h>
#include <event2/bufferevent_ssl.h>
#include <event2/thread.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "chainfire/common/sockets.h"
#include "chainfire/common/thread_name.h"
#include "http_internal.h"

namespace chainfire::http {
namespace {

// What every HTTP/2 client sends first (RFC 9113, 3.4); gRPC clients send it at once.
constexpr std::string_view kHttp2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
// A connection silent for this long is handed to gRPC (see Sniff).
constexpr int kSilentHandoffMs = 20;

}  // namespace

const std::string* Request::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, absl::string_view(name.data(), name.size()))) return &value;
  }
  return nullptr;
}

LoopPoster::LoopPoster(event_base* base) {
  wake_ = event_new(base, -1, 0, &LoopPoster::OnWake, this);
}

LoopPoster::~LoopPoster() { Close(); }

bool LoopPoster::Post(std::function<void()> work) {
  std::lock_guard lock(mu_);
  if (closed_) return false;
  queue_.push_back(std::move(work));
  if (queue_.size() == 1) event_active(wake_, 0, 0);
  return true;
}

void LoopPoster::OnWake(evutil_socket_t, short, void* self) {
  auto* poster = static_cast<LoopPoster*>(self);
  std::vector<std::function<void()>> work;
  {
    std::lock_guard lock(poster->mu_);
    work.swap(poster->queue_);
  }
  for (auto& w : work) w();
}

void LoopPoster::Close() {
  std::vector<std::function<void()>> dropped;
  std::lock_guard lock(mu_);
  if (closed_) return;
  closed_ = true;
  dropped.swap(queue_);
  event_free(wake_);
  wake_ = nullptr;
}

HttpServer::Impl::Impl(std::map<std::string, Handler> routes, Options opts, event_base* b)
    : options(std::move(opts)),
      base(b),
      poster(std::make_shared<LoopPoster>(b)),
      routes_(std::move(routes)) {
  resume_ = evtimer_new(base, &Impl::OnResume, this);
}

HttpServer::Impl::~Impl() {
  // Destroy connections one by one: a closing exchange's callback may look others up.
  while (!connections_.empty()) Destroy(connections_.begin()->first);
  poster->Close();
  for (evconnlistener* l : listeners_) evconnlistener_free(l);
  event_free(resume_);
  event_base_free(base);
}

absl::Status HttpServer::Impl::Listen(const std::string& hp) {
  std::string error;
  AddrInfoList found = ResolveHostPort(hp, /*passive=*/true, &error);
  if (found == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", hp, ": ", error));
  }
  evconnlistener* listener =
      evconnlistener_new_bind(base, &Impl::OnAccept, this,
                              LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                              1024, found->ai_addr, static_cast<int>(found->ai_addrlen));
  if (listener == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", hp, ": ", std::strerror(errno)));
  }
  evconnlistener_set_error_cb(listener, &Impl::OnAcceptError);
  listeners_.push_back(listener);
  return absl::OkStatus();
}

void HttpServer::Impl::OnAccept(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int len,
                                void* self) {
  auto* impl = static_cast<Impl*>(self);
  if (impl->connections_.size() + impl->sniffing_ >= impl->options.max_connections) {
    close(fd);
    return;
  }
  const int one = 1;  // answers and stream chunks go out at once
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  std::string peer = PeerName(addr, len);
  if (impl->options.grpc_handoff) {
    impl->Sniff(fd, std::move(peer));
  } else {
    impl->Serve(fd, std::move(peer));
  }
}

void HttpServer::Impl::OnAcceptError(evconnlistener* listener, void* self) {
  auto* impl = static_cast<Impl*>(self);
  // Out of descriptors (EMFILE): pause accepting briefly instead of spinning on the listener.
  for (evconnlistener* l : impl->listeners_) evconnlistener_disable(l);
  const timeval tv{0, 100 * 1000};
  evtimer_add(impl->resume_, &tv);
}

void HttpServer::Impl::OnResume(evutil_socket_t, short, void* self) {
  for (evconnlistener* l : static_cast<Impl*>(self)->listeners_) evconnlistener_enable(l);
}

namespace {

// A connection on a shared client port whose first bytes have not decided its protocol yet.
struct Sniffer {
  HttpServer::Impl* impl;
  size_t* count;
  std::string peer;
  event* ev = nullptr;
};

}  // namespace

void HttpServer::Impl::Sniff(int fd, std::string peer) {
  auto* s = new Sniffer{this, &sniffing_, std::move(peer)};
  ++sniffing_;
  auto on_readable = [](evutil_socket_t fd, short what, void* arg) {
    auto* s = static_cast<Sniffer*>(arg);
    char head[kHttp2Preface.size()];
    const ssize_t n = recv(fd, head, sizeof(head), MSG_PEEK | MSG_DONTWAIT);
    const bool silent = n < 0 && (errno == EAGAIN || errno == EINTR);
    if (silent && !(what & EV_TIMEOUT)) {  // woken without bytes: wait again
      const timeval tv{0, kSilentHandoffMs * 1000};
      event_add(s->ev, &tv);
      return;
    }
    event_free(s->ev);
    --*s->count;
    if (silent ||
        (n > 0 && std::string_view(head, static_cast<size_t>(n)) == kHttp2Preface.substr(0, n))) {
      // The HTTP/2 preface (or its start), or silence: an HTTP/1.1 client speaks first, but an
      // HTTP/2 client may wait for the server's SETTINGS (gRPC's C core does when it
      // reconnects). Either way gRPC's.
      s->impl->options.grpc_handoff(fd, s->peer);
    } else if (n > 0) {
      s->impl->Serve(fd, std::move(s->peer));
    } else {
      close(fd);  // closed or failed before a byte
    }
    delete s;
  };
  s->ev = event_new(base, fd, EV_READ, on_readable, s);
  const timeval tv{0, kSilentHandoffMs * 1000};
  event_add(s->ev, &tv);
}

void HttpServer::Impl::Serve(int fd, std::string peer) {
  bufferevent* bev = nullptr;
  if (options.tls) {
    std::shared_ptr<SSL_CTX> ctx = options.tls();
    SSL* ssl = ctx ? SSL_new(ctx.get()) : nullptr;  // holds its own reference to the context
    if (ssl == nullptr) {
      close(fd);  // never fall back to plaintext
      return;
    }
    bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                         BEV_OPT_CLOSE_ON_FREE);
  } else {
    bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
  }
  if (bev == nullptr) {
    close(fd);
    return;
  }
  const uint64_t id = next_id_++;
  auto connection = std::make_unique<Connection>(this, id, bev, std::move(peer));
  Connection* c = connection.get();
  connections_.emplace(id, std::move(connection));
  c->Start();
}

Connection* HttpServer::Impl::Find(uint64_t id) {
  auto it = connections_.find(id);
  return it == connections_.end() ? nullptr : it->second.get();
}

void HttpServer::Impl::Destroy(uint64_t id) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  std::unique_ptr<Connection> gone = std::move(it->second);
  connections_.erase(it);
  gone.reset();
}

const Handler* HttpServer::Impl::ExactRoute(const std::string& path) const {
  auto it = routes_.find(path);
  return it == routes_.end() ? nullptr : &it->second;
}

const AsyncHandler* HttpServer::Impl::PrefixRoute(const std::string& path) const {
  const AsyncHandler* best = nullptr;
  size_t best_size = 0;
  for (const auto& [prefix, handler] : options.prefix_routes) {
    if (absl::StartsWith(path, prefix) && prefix.size() >= best_size) {
      best = &handler;
      best_size = prefix.size();
    }
  }
  return best;
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const std::vector<std::string>& host_ports, std::map<std::string, Handler> routes,
    Options options) {
  static std::once_flag threads_once;
  std::call_once(threads_once, [] { evthread_use_pthreads(); });
  event_base* base = event_base_new();
  if (base == nullptr) return absl::InternalError("cannot create the HTTP server (libevent)");
  std::unique_ptr<HttpServer> s(new HttpServer());
  s->impl_ = std::make_unique<Impl>(std::move(routes), std::move(options), base);
  for (const std::string& hp : host_ports) {
    absl::Status listening = s->impl_->Listen(hp);
    if (!listening.ok()) return listening;
  }
  s->thread_ = std::thread([base] {
    SetThreadName("cf-http");
    event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
  });
  return s;
}

HttpServer::~HttpServer() {
  if (impl_ && thread_.joinable()) {
    event_base_loopbreak(impl_->base);
    thread_.join();
  }
  impl_.reset();
}

}  // namespace chainfire::http
