#include "chainfire/server/client_port.h"

#include "absl/strings/match.h"
#include "chainfire/server/client_address.h"
#include "chainfire/server/cluster_config.h"
#include "chainfire/server/services.h"
#include "grpcpp/server_posix.h"

namespace chainfire::server {

absl::StatusOr<std::vector<std::unique_ptr<http::HttpServer>>> StartClientHttp(
    const ClientHttpConfig& config, grpc::Server* grpc_server, gateway::JsonGateway* gateway,
    metrics::Registry& registry, HealthCheck* health) {
  const auto https = [](const std::string& u) { return absl::StartsWith(u, "https://"); };
  http::HttpServer::Options options;
  options.prefix_routes = gateway->HttpRoutes();
  // Base64 makes a value 4/3 larger; the gRPC limit still applies to the request itself.
  options.max_body_bytes = static_cast<size_t>(2 * config.max_request_bytes + (1 << 20));
  std::vector<std::string> shared, http_only, https_only;
  for (const std::string& u : config.client_urls) {
    if (!https(u)) shared.push_back(HostPort(u));
  }
  for (const std::string& u : config.http_urls) {
    (https(u) ? https_only : http_only).push_back(HostPort(u));
  }
  const auto routes = [&] {
    return ClientHttpRoutes(registry, health, kEtcdApiVersion, kEtcdApiVersion);
  };
  std::vector<std::unique_ptr<http::HttpServer>> servers;
  auto start = [&](const std::vector<std::string>& host_ports,
                   const http::HttpServer::Options& o) -> absl::Status {
    if (host_ports.empty()) return absl::OkStatus();
    auto server = http::HttpServer::Start(host_ports, routes(), o);
    if (!server.ok()) return server.status();
    servers.push_back(std::move(*server));
    return absl::OkStatus();
  };
  http::HttpServer::Options shared_options = options;
  shared_options.grpc_handoff = [grpc_server](int fd, const std::string& peer) {
    RecordHandedOverConnection(fd, peer);
    grpc::AddInsecureChannelFromFd(grpc_server, fd);
  };
  http::HttpServer::Options tls_options = options;
  tls_options.tls = config.https_contexts;
  for (auto [host_ports, o] : {std::pair{&shared, &shared_options}, std::pair{&http_only, &options},
                               std::pair{&https_only, &tls_options}}) {
    if (absl::Status s = start(*host_ports, *o); !s.ok()) return s;
  }
  return servers;
}

}  // namespace chainfire::server
