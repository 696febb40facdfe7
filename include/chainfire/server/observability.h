// What an operator watches a member through: its metrics under etcd's names (docs/
// monitoring.md), the /health check exactly as etcd 3.4's, the gRPC request counters, and the
// routes of the --listen-metrics-urls listener.
// Thread-safety: the metrics are read at scrape time from any thread; HealthCheck::Check may run
// on any thread (it waits at most its timeout); the interceptor runs on gRPC's threads.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "chainfire/http/http_server.h"
#include "chainfire/metrics/registry.h"
#include "chainfire/server/node_host.h"
#include "chainfire/storage/engine.h"
#include "grpcpp/support/server_interceptor.h"

namespace chainfire::server {

// etcd_server_*, etcd_mvcc_db_*, etcd_debugging_mvcc_keys_total and process_* read from the
// host, the engine and /proc when scraped.
void RegisterMemberMetrics(metrics::Registry& registry, NodeHost* host, storage::Engine* engine,
                           int64_t quota_backend_bytes);

// etcd 3.4's /health: healthy when no alarm is raised, a leader is known, and a quorum read
// through Raft completes within the timeout (1 s). Counts etcd_server_health_success/_failures.
class HealthCheck {
 public:
  HealthCheck(NodeHost* host, metrics::Registry& registry,
              std::chrono::milliseconds timeout = std::chrono::seconds(1));
  bool Check();
  // GET: 200 {"health":"true"} or 503 {"health":"false"}; other methods 405.
  http::Response Serve(const http::Request& request);

 private:
  NodeHost* host_;
  const std::chrono::milliseconds timeout_;
  metrics::Counter* success_;
  metrics::Counter* failures_;
};

// /metrics (the registry in the text format) and /health.
std::map<std::string, http::Handler> MetricsRoutes(metrics::Registry& registry,
                                                   HealthCheck* health);

// The HTTP routes of the client port beside the JSON gateway: /metrics, /health and etcd's
// /version ({"etcdserver":...,"etcdcluster":...}).
std::map<std::string, http::Handler> ClientHttpRoutes(metrics::Registry& registry,
                                                      HealthCheck* health,
                                                      const std::string& server_version,
                                                      const std::string& cluster_version);

// Counts grpc_server_started_total and grpc_server_handled_total (go-grpc-prometheus's names and
// labels, which etcd serves) for every call of the server it is installed on.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> GrpcMetricsInterceptor(
    metrics::Registry& registry);

}  // namespace chainfire::server
