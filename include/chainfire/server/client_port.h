// The HTTP side of a member's client port: every http:// client URL is shared with gRPC (its
// HTTP/2 connections are handed to the gRPC server, as etcd's cmux does), and
// --listen-client-http-urls are HTTP only (HTTPS with the client TLS flags). Both serve the
// JSON gateway, /version, /health and /metrics.
// Thread-safety: StartClientHttp from one thread; the servers run on their own loop threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "chainfire/gateway/json_gateway.h"
#include "chainfire/http/http_server.h"
#include "chainfire/metrics/registry.h"
#include "chainfire/server/observability.h"
#include "grpcpp/server.h"

namespace chainfire::server {

struct ClientHttpConfig {
  std::vector<std::string> client_urls;  // --listen-client-urls (only http:// ones are shared)
  std::vector<std::string> http_urls;    // --listen-client-http-urls
  int64_t max_request_bytes = 1572864;
  // Server contexts for https:// URLs of http_urls (MemberTls::HttpsContexts).
  std::function<std::shared_ptr<ssl_ctx_st>()> https_contexts;
};

// Starts one HttpServer for the shared URLs, one for the http:// and one for the https://
// HTTP-only URLs (those that exist). `grpc_server`, `gateway`, `registry` and `health` must
// outlive the servers. Fails naming an address that cannot be bound.
absl::StatusOr<std::vector<std::unique_ptr<http::HttpServer>>> StartClientHttp(
    const ClientHttpConfig& config, grpc::Server* grpc_server, gateway::JsonGateway* gateway,
    metrics::Registry& registry, HealthCheck* health);

}  // namespace chainfire::server
