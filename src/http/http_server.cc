#include "chainfire/http/http_server.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <openssl/ssl.h>

#include <cstdlib>
#include <mutex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace chainfire::http {
namespace {

const char* MethodName(evhttp_cmd_type cmd) {
  switch (cmd) {
    case EVHTTP_REQ_GET:
      return "GET";
    case EVHTTP_REQ_POST:
      return "POST";
    case EVHTTP_REQ_HEAD:
      return "HEAD";
    case EVHTTP_REQ_PUT:
      return "PUT";
    case EVHTTP_REQ_DELETE:
      return "DELETE";
    case EVHTTP_REQ_OPTIONS:
      return "OPTIONS";
    case EVHTTP_REQ_TRACE:
      return "TRACE";
    case EVHTTP_REQ_CONNECT:
      return "CONNECT";
    case EVHTTP_REQ_PATCH:
      return "PATCH";
  }
  return "?";
}

const char* ReasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 503:
      return "Service Unavailable";
    default:
      return nullptr;  // libevent's default phrase
  }
}

}  // namespace

void HttpServer::OnRequest(evhttp_request* req, void* arg) {
  auto* self = static_cast<HttpServer*>(arg);
  Request request;
  request.method = MethodName(evhttp_request_get_command(req));
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  const char* path = uri ? evhttp_uri_get_path(uri) : nullptr;
  request.path = path && *path ? path : "/";
  Response response;
  auto route = self->routes_.find(request.path);
  if (route == self->routes_.end()) {
    response.status = 404;
    response.body = "404 page not found\n";
  } else {
    response = route->second(request);
  }
  evkeyvalq* headers = evhttp_request_get_output_headers(req);
  evhttp_add_header(headers, "Content-Type", response.content_type.c_str());
  for (const auto& [name, value] : response.headers) {
    evhttp_add_header(headers, name.c_str(), value.c_str());
  }
  evbuffer* body = evbuffer_new();
  evbuffer_add(body, response.body.data(), response.body.size());
  evhttp_send_reply(req, response.status, ReasonPhrase(response.status), body);
  evbuffer_free(body);
}

bufferevent* HttpServer::NewTlsConnection(event_base* base, void* arg) {
  auto* self = static_cast<HttpServer*>(arg);
  std::shared_ptr<SSL_CTX> ctx = self->options_.tls();
  SSL* ssl = ctx ? SSL_new(ctx.get()) : nullptr;  // holds its own reference to the context
  // Never fall back to plaintext: libevent would make a plain connection of a null here.
  if (!ssl) std::abort();
  return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                        BEV_OPT_CLOSE_ON_FREE);
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const std::vector<std::string>& host_ports, std::map<std::string, Handler> routes,
    Options options) {
  static std::once_flag threads_once;
  std::call_once(threads_once, [] { evthread_use_pthreads(); });
  std::unique_ptr<HttpServer> s(new HttpServer());
  s->routes_ = std::move(routes);
  s->options_ = options;
  s->base_ = event_base_new();
  s->http_ = s->base_ ? evhttp_new(s->base_) : nullptr;
  if (!s->http_) return absl::InternalError("cannot create the HTTP server (libevent)");
  evhttp_set_max_headers_size(s->http_, static_cast<ev_ssize_t>(options.max_header_bytes));
  evhttp_set_max_body_size(s->http_, static_cast<ev_ssize_t>(options.max_body_bytes));
  evhttp_set_timeout(s->http_, options.timeout_seconds);
  evhttp_set_allowed_methods(s->http_, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                           EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                           EVHTTP_REQ_PATCH);
  evhttp_set_gencb(s->http_, &HttpServer::OnRequest, s.get());
  if (options.tls) evhttp_set_bevcb(s->http_, &HttpServer::NewTlsConnection, s.get());
  for (const std::string& hp : host_ports) {
    const size_t colon = hp.rfind(':');
    int port = 0;
    if (colon == std::string::npos || !absl::SimpleAtoi(hp.substr(colon + 1), &port)) {
      return absl::InvalidArgumentError(absl::StrCat("not a host:port: ", hp));
    }
    std::string host = hp.substr(0, colon);
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    if (evhttp_bind_socket(s->http_, host.c_str(), static_cast<uint16_t>(port)) != 0) {
      return absl::UnavailableError(absl::StrCat("cannot listen on ", hp));
    }
  }
  event_base* base = s->base_;
  s->thread_ = std::thread([base] { event_base_dispatch(base); });
  return s;
}

HttpServer::~HttpServer() {
  if (base_ && thread_.joinable()) {
    event_base_loopbreak(base_);
    thread_.join();
  }
  if (http_) evhttp_free(http_);
  if (base_) event_base_free(base_);
}

}  // namespace chainfire::http
