// One HTTP/1.1 connection of HttpServer: Beast's parser reads the requests, Beast's serializer
// writes the answers, libevent's bufferevent moves the bytes (plain or TLS).
#include <event2/buffer.h>
#include <sys/socket.h>

#include <boost/beast/core/buffers_range.hpp>
#include <sstream>

#include "absl/strings/match.h"
#include "http_internal.h"

namespace chainfire::http {
namespace beast_http = boost::beast::http;

// The Exchange handed to an AsyncHandler: every call is posted to the loop thread, where the
// connection (if it still exists and still waits for this request) carries it out.
class ExchangeImpl : public Exchange, public std::enable_shared_from_this<ExchangeImpl> {
 public:
  ExchangeImpl(HttpServer::Impl* server, uint64_t connection, uint64_t serial)
      : server_(server), poster_(server->poster), connection_(connection), serial_(serial) {}

  void Reply(Response response) override {
    Run([response = std::move(response)](Connection* c, uint64_t n) mutable {
      c->Reply(n, std::move(response));
    });
  }
  void StartStream(int status, std::string content_type) override {
    Run([status, content_type](Connection* c, uint64_t n) {
      c->StartStream(n, status, content_type);
    });
  }
  void Send(std::string chunk) override {
    Run([chunk = std::move(chunk)](Connection* c, uint64_t n) { c->Send(n, chunk); });
  }
  void End() override {
    Run([](Connection* c, uint64_t n) { c->End(n); });
  }
  void OnClose(std::function<void()> callback) override {
    std::unique_lock lock(mu_);
    if (!closed_) {
      on_close_ = std::move(callback);
      return;
    }
    lock.unlock();
    // Already closed: still on the loop thread if the server runs, else here.
    if (!poster_->Post(callback)) callback();
  }
  // The connection went away before the answer was complete. Loop thread.
  void Closed() {
    std::function<void()> callback;
    {
      std::lock_guard lock(mu_);
      closed_ = true;
      callback.swap(on_close_);
    }
    if (callback) callback();
  }

 private:
  template <typename F>
  void Run(F work) {
    poster_->Post(
        [server = server_, id = connection_, serial = serial_, work = std::move(work)]() mutable {
          if (Connection* c = server->Find(id)) work(c, serial);
        });
  }

  HttpServer::Impl* const server_;  // dereferenced only on the loop thread, while it runs
  const std::shared_ptr<LoopPoster> poster_;
  const uint64_t connection_;
  const uint64_t serial_;
  std::mutex mu_;
  bool closed_ = false;             // guarded by mu_
  std::function<void()> on_close_;  // guarded by mu_
};

Connection::Connection(HttpServer::Impl* server, uint64_t id, bufferevent* bev, std::string peer)
    : server_(server), id_(id), bev_(bev), peer_(std::move(peer)) {
  timer_ = evtimer_new(server_->base, &Connection::OnTimer, this);
}

Connection::~Connection() {
  if (exchange_) exchange_->Closed();
  event_free(timer_);
  bufferevent_free(bev_);
}

void Connection::Start() {
  bufferevent_setcb(bev_, &Connection::OnRead, &Connection::OnWrite, &Connection::OnEvent, this);
  // Input beyond one whole request is left in the socket until this one is answered.
  bufferevent_setwatermark(bev_, EV_READ, 0,
                           server_->options.max_header_bytes + server_->options.max_body_bytes);
  bufferevent_enable(bev_, EV_READ | EV_WRITE);
  Arm(server_->options.idle_timeout_seconds);
}

void Connection::Arm(int seconds) {
  const timeval tv{seconds, 0};
  evtimer_add(timer_, &tv);
}

void Connection::OnRead(bufferevent*, void* self) { static_cast<Connection*>(self)->Process(); }

void Connection::OnWrite(bufferevent*, void* self) {
  auto* c = static_cast<Connection*>(self);
  if (c->state_ != State::kClosing) return;
  // Everything written. A client may still be sending (a body refused by its size): close our
  // side, and read and drop its bytes for a while, so that it gets to read the answer rather
  // than a reset.
  const evutil_socket_t fd = bufferevent_getfd(c->bev_);
  if (c->server_->options.tls || fd < 0 || shutdown(fd, SHUT_WR) != 0) {
    c->Close();
    return;
  }
  c->state_ = State::kLingering;
  c->Arm(2);
}

void Connection::OnEvent(bufferevent*, short what, void* self) {
  auto* c = static_cast<Connection*>(self);
  // The peer closed or the socket failed: nothing more can be read or written.
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) c->Close();
}

void Connection::OnTimer(evutil_socket_t, short, void* self) {
  // Idle too long, or a request not complete in time (slowloris).
  static_cast<Connection*>(self)->Close();
}

void Connection::Close() { server_->Destroy(id_); }

void Connection::Process() {
  evbuffer* in = bufferevent_get_input(bev_);
  if (state_ == State::kClosing || state_ == State::kLingering) {
    evbuffer_drain(in, evbuffer_get_length(in));
    return;
  }
  while (state_ == State::kIdle || state_ == State::kReading) {
    const size_t n = evbuffer_get_length(in);
    if (n == 0) return;
    if (state_ == State::kIdle) {
      state_ = State::kReading;
      parser_.emplace();
      parser_->eager(true);
      parser_->header_limit(static_cast<uint32_t>(server_->options.max_header_bytes));
      parser_->body_limit(server_->options.max_body_bytes);
      continue_sent_ = false;
      Arm(server_->options.timeout_seconds);
    }
    const char* data = reinterpret_cast<const char*>(evbuffer_pullup(in, -1));
    boost::beast::error_code ec;
    const size_t used = parser_->put(boost::asio::const_buffer(data, n), ec);
    evbuffer_drain(in, used);
    if (ec && ec != beast_http::error::need_more) {
      Response refusal;
      refusal.status = ec == beast_http::error::header_limit ? 431
                       : ec == beast_http::error::body_limit ? 413
                                                             : 400;
      refusal.body = ec.message() + "\n";
      keep_alive_ = false;
      head_ = false;
      state_ = State::kAnswering;
      Write(refusal);
      Finish();
      return;
    }
    if (parser_->is_header_done() && !parser_->is_done() && !continue_sent_) {
      continue_sent_ = true;  // curl waits for this before sending a body over 1 KiB
      const auto& expect = parser_->get()[beast_http::field::expect];
      if (absl::EqualsIgnoreCase(absl::string_view(expect.data(), expect.size()), "100-continue")) {
        evbuffer_add_printf(bufferevent_get_output(bev_), "HTTP/1.1 100 Continue\r\n\r\n");
      }
    }
    if (parser_->is_done()) {
      Dispatch();
      continue;
    }
    if (used == 0) return;  // wait for more bytes
  }
}

void Connection::Dispatch() {
  beast_http::request<beast_http::string_body> message = parser_->release();
  parser_.reset();
  evtimer_del(timer_);
  state_ = State::kAnswering;
  keep_alive_ = message.keep_alive();
  head_ = message.method() == beast_http::verb::head;
  Request request;
  request.method = std::string(message.method_string());
  const std::string_view target(message.target().data(), message.target().size());
  request.path = std::string(target.substr(0, target.find('?')));
  if (request.path.empty()) request.path = "/";
  request.body = std::move(message.body());
  request.peer = peer_;
  for (const auto& field : message) {
    request.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  if (const Handler* handler = server_->ExactRoute(request.path)) {
    Write((*handler)(request));
    Finish();
    return;
  }
  if (const AsyncHandler* handler = server_->PrefixRoute(request.path)) {
    exchange_ = std::make_shared<ExchangeImpl>(server_, id_, ++serial_);
    (*handler)(std::move(request), exchange_);
    return;
  }
  Response not_found;
  not_found.status = 404;
  not_found.body = "404 page not found\n";
  Write(not_found);
  Finish();
}

void Connection::Write(const Response& response) {
  beast_http::response<beast_http::string_body> message;
  message.version(11);
  message.result(static_cast<unsigned>(response.status));
  message.set(beast_http::field::content_type, response.content_type);
  for (const auto& [name, value] : response.headers) message.insert(name, value);
  message.body() = response.body;
  message.prepare_payload();
  message.keep_alive(keep_alive_);
  std::ostringstream out;
  if (head_) {
    out << message.base();
  } else {
    out << message;
  }
  const std::string bytes = std::move(out).str();
  evbuffer_add(bufferevent_get_output(bev_), bytes.data(), bytes.size());
}

void Connection::Finish() {
  exchange_.reset();
  if (!keep_alive_) {
    // Closes once the answer (always some bytes) is written: OnWrite.
    state_ = State::kClosing;
    return;
  }
  state_ = State::kIdle;
  Arm(server_->options.idle_timeout_seconds);
  // The reader may have stopped at the watermark while this request was answered.
  bufferevent_enable(bev_, EV_READ);
}

void Connection::Reply(uint64_t serial, Response response) {
  if (serial != serial_ || state_ != State::kAnswering) return;
  Write(response);
  Finish();
  Process();  // a request that arrived meanwhile (pipelining)
}

void Connection::StartStream(uint64_t serial, int status, const std::string& content_type) {
  if (serial != serial_ || state_ != State::kAnswering) return;
  beast_http::response<beast_http::empty_body> message;
  message.version(11);
  message.result(static_cast<unsigned>(status));
  message.set(beast_http::field::content_type, content_type);
  message.chunked(true);
  message.keep_alive(keep_alive_);
  std::ostringstream out;
  out << message.base();
  const std::string bytes = std::move(out).str();
  evbuffer_add(bufferevent_get_output(bev_), bytes.data(), bytes.size());
  state_ = State::kStreaming;
}

void Connection::Send(uint64_t serial, const std::string& chunk) {
  if (serial != serial_ || state_ != State::kStreaming || chunk.empty()) return;
  evbuffer* out = bufferevent_get_output(bev_);
  for (auto buffer : boost::beast::buffers_range(
           beast_http::make_chunk(boost::asio::const_buffer(chunk.data(), chunk.size())))) {
    evbuffer_add(out, buffer.data(), buffer.size());
  }
  // A reader that does not keep up is cut off rather than buffered without bound.
  if (evbuffer_get_length(out) > server_->options.max_queued_bytes) Close();
}

void Connection::End(uint64_t serial) {
  if (serial != serial_ || state_ != State::kStreaming) return;
  evbuffer* out = bufferevent_get_output(bev_);
  for (auto buffer : boost::beast::buffers_range(beast_http::make_chunk_last())) {
    evbuffer_add(out, buffer.data(), buffer.size());
  }
  Finish();
  Process();
}

}  // namespace chainfire::http
