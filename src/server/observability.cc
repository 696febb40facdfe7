#include "chainfire/server/observability.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <condition_variable>
#include <ctime>
#include <fstream>
#include <mutex>
#include <shared_mutex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "chainfire/server/services.h"

namespace chainfire::server {
namespace {

using metrics::Registry;
using metrics::Type;

// /proc/self/stat fields (after the command name): utime, stime (ticks), vsize, rss (pages).
struct ProcStat {
  double cpu_seconds = 0, virtual_bytes = 0, resident_bytes = 0;
};

ProcStat ReadProcStat() {
  ProcStat out;
  std::ifstream in("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return out;
  std::istringstream fields(text.substr(close + 2));
  std::vector<std::string> f;
  for (std::string x; fields >> x;) f.push_back(x);
  // Field 3 (state) is f[0]; utime is field 14, stime 15, vsize 23, rss 24.
  if (f.size() < 22) return out;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  out.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / tick;
  out.virtual_bytes = std::stod(f[20]);
  out.resident_bytes = std::stod(f[21]) * static_cast<double>(sysconf(_SC_PAGESIZE));
  return out;
}

double OpenFds() {
  DIR* d = opendir("/proc/self/fd");
  if (!d) return 0;
  double n = 0;
  while (const dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n - 1;  // the directory's own descriptor
}

void RegisterProcessMetrics(Registry& r) {
  const double start = static_cast<double>(std::time(nullptr));
  r.AddCallback("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                Type::kCounter, [] { return ReadProcStat().cpu_seconds; });
  r.AddCallback("process_open_fds", "Number of open file descriptors.", Type::kGauge, OpenFds);
  r.AddCallback("process_max_fds", "Maximum number of open file descriptors.", Type::kGauge, [] {
    rlimit l{};
    getrlimit(RLIMIT_NOFILE, &l);
    return static_cast<double>(l.rlim_cur);
  });
  r.AddCallback("process_virtual_memory_bytes", "Virtual memory size in bytes.", Type::kGauge,
                [] { return ReadProcStat().virtual_bytes; });
  r.AddCallback("process_resident_memory_bytes", "Resident memory size in bytes.", Type::kGauge,
                [] { return ReadProcStat().resident_bytes; });
  r.AddCallback("process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.", Type::kGauge,
                [start] { return start; });
}

// go-grpc-prometheus's names for the kinds of call and the status codes.
const char* GrpcType(grpc::experimental::ServerRpcInfo::Type t) {
  switch (t) {
    case grpc::experimental::ServerRpcInfo::Type::UNARY:
      return "unary";
    case grpc::experimental::ServerRpcInfo::Type::CLIENT_STREAMING:
      return "client_stream";
    case grpc::experimental::ServerRpcInfo::Type::SERVER_STREAMING:
      return "server_stream";
    case grpc::experimental::ServerRpcInfo::Type::BIDI_STREAMING:
      return "bidi_stream";
  }
  return "unknown";
}

constexpr std::array<const char*, 17> kCodeNames = {
    "OK",       "Canceled",       "Unknown",          "InvalidArgument",   "DeadlineExceeded",
    "NotFound", "AlreadyExists",  "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
    "Aborted",  "OutOfRange",     "Unimplemented",    "Internal",          "Unavailable",
    "DataLoss", "Unauthenticated"};

// The counters of one method, found once per method name.
struct MethodCounters {
  metrics::Counter* started;
  std::array<metrics::Counter*, kCodeNames.size()> handled;
};

class GrpcCounters {
 public:
  explicit GrpcCounters(Registry& r)
      : started_(r.AddCounter("grpc_server_started_total",
                              "Total number of RPCs started on the server.",
                              {"grpc_type", "grpc_service", "grpc_method"})),
        handled_(r.AddCounter(
            "grpc_server_handled_total",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            {"grpc_type", "grpc_service", "grpc_method", "grpc_code"})) {}

  const MethodCounters* For(const char* full_method, grpc::experimental::ServerRpcInfo::Type t) {
    const std::string key(full_method ? full_method : "");
    {
      std::shared_lock<std::shared_mutex> l(mu_);
      if (auto it = methods_.find(key); it != methods_.end()) return it->second.get();
    }
    // "/etcdserverpb.KV/Range" -> service "etcdserverpb.KV", method "Range".
    const size_t slash = key.rfind('/');
    const std::string service =
        slash == std::string::npos || slash == 0 ? "" : key.substr(1, slash - 1);
    const std::string method = slash == std::string::npos ? key : key.substr(slash + 1);
    auto m = std::make_unique<MethodCounters>();
    m->started = started_->With({GrpcType(t), service, method});
    for (size_t c = 0; c < kCodeNames.size(); ++c) {
      m->handled[c] = handled_->With({GrpcType(t), service, method, kCodeNames[c]});
    }
    std::unique_lock<std::shared_mutex> l(mu_);
    auto& slot = methods_[key];
    if (!slot) slot = std::move(m);
    return slot.get();
  }

 private:
  metrics::Family<metrics::Counter>* started_;
  metrics::Family<metrics::Counter>* handled_;
  std::shared_mutex mu_;
  std::map<std::string, std::unique_ptr<MethodCounters>> methods_;  // guarded by mu_
};

class CountingInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit CountingInterceptor(const MethodCounters* m) : m_(m) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      m_->started->Add();
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const size_t code = static_cast<size_t>(methods->GetSendStatus().error_code());
      m_->handled[code < kCodeNames.size() ? code : 2]->Add();
    }
    methods->Proceed();
  }

 private:
  const MethodCounters* m_;
};

class CountingInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit CountingInterceptorFactory(Registry& r) : counters_(r) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new CountingInterceptor(counters_.For(info->method(), info->type()));
  }

 private:
  GrpcCounters counters_;
};

// Both routes serve GET only, as etcd's.
http::Response MethodNotAllowed() {
  http::Response r;
  r.status = 405;
  r.headers = {{"Allow", "GET"}};
  r.body = "Method Not Allowed\n";
  return r;
}

}  // namespace

void RegisterMemberMetrics(Registry& r, NodeHost* host, storage::Engine* engine,
                           int64_t quota_backend_bytes) {
  r.AddCallback("etcd_server_has_leader",
                "Whether or not a leader exists. 1 is existence, 0 is not.", Type::kGauge,
                [host] { return host->leader() != 0 ? 1.0 : 0.0; });
  r.AddCallback("etcd_server_is_leader",
                "Whether or not this member is a leader. 1 if is, 0 otherwise.", Type::kGauge,
                [host] { return host->is_leader() ? 1.0 : 0.0; });
  r.AddCallback("etcd_server_leader_changes_seen_total", "The number of leader changes seen.",
                Type::kCounter, [host] { return static_cast<double>(host->leader_changes()); });
  // etcd exposes these two counts as gauges (with _total names); so does ChainFire.
  r.AddCallback("etcd_server_proposals_committed_total",
                "The total number of consensus proposals committed.", Type::kGauge,
                [host] { return static_cast<double>(host->commit_index()); });
  r.AddCallback("etcd_server_proposals_applied_total",
                "The total number of consensus proposals applied.", Type::kGauge,
                [host] { return static_cast<double>(host->applied_index()); });
  r.AddCallback("etcd_server_proposals_pending",
                "The current number of pending proposals to commit.", Type::kGauge,
                [host] { return static_cast<double>(host->proposals_pending()); });
  r.AddCallback("etcd_server_slow_apply_total",
                "The total number of slow apply requests (likely overloaded from slow disk).",
                Type::kCounter, [host] { return static_cast<double>(host->slow_applies()); });
  r.AddCallback("etcd_server_proposals_failed_total", "The total number of failed proposals seen.",
                Type::kCounter, [host] { return static_cast<double>(host->proposals_failed()); });
  const std::string member_id = HexId(host->member_id());
  r.AddCallback("etcd_server_id",
                "Server or member ID in hexadecimal format. 1 for 'server_id' label with current "
                "ID.",
                Type::kGauge, {"server_id"}, [member_id] {
                  return Registry::Samples{{{member_id}, 1}};
                });
  r.AddCallback("etcd_server_version",
                "Which version is running. 1 for 'server_version' label with current version.",
                Type::kGauge, {"server_version"}, [] {
                  return Registry::Samples{{{kEtcdApiVersion}, 1}};
                });
  r.AddCallback("etcd_server_quota_backend_bytes", "Current backend storage quota size in bytes.",
                Type::kGauge,
                [quota_backend_bytes] { return static_cast<double>(quota_backend_bytes); });
  r.AddCallback("etcd_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
                Type::kGauge, [engine] { return static_cast<double>(engine->DiskSize()); });
  r.AddCallback(
      "etcd_mvcc_db_total_size_in_use_in_bytes",
      "Total size of the underlying database logically in use in bytes.", Type::kGauge, [engine] {
        return static_cast<double>(engine->IntProperty("rocksdb.estimate-live-data-size"));
      });
  r.AddCallback("etcd_debugging_mvcc_keys_total", "Total number of keys.", Type::kGauge,
                [host] { return static_cast<double>(host->kv().live_keys()); });
  r.AddCallback("etcd_debugging_mvcc_watcher_total", "Total number of watchers.", Type::kGauge,
                [host] { return static_cast<double>(host->watch_hub().watcher_count()); });
  // ChainFire's own: RocksDB's backlog and write stalls (a stalled store stalls every write).
  r.AddCallback("chainfire_rocksdb_pending_compaction_bytes",
                "Bytes RocksDB estimates its compactions still have to rewrite.", Type::kGauge,
                [engine] {
                  return static_cast<double>(
                      engine->IntProperty("rocksdb.estimate-pending-compaction-bytes"));
                });
  r.AddCallback(
      "chainfire_rocksdb_write_stopped",
      "1 while RocksDB stops writes (too many files to compact), 0 otherwise.", Type::kGauge,
      [engine] { return engine->IntProperty("rocksdb.is-write-stopped") > 0 ? 1.0 : 0.0; });
  r.AddCallback(
      "chainfire_rocksdb_delayed_write_rate_bytes",
      "The rate RocksDB slows writes to while it stalls them (0: not stalling).", Type::kGauge,
      [engine] {
        return static_cast<double>(engine->IntProperty("rocksdb.actual-delayed-write-rate"));
      });
  r.AddCallback("chainfire_rocksdb_write_stall_seconds_total",
                "Total time writes waited in RocksDB's write stalls (slowdowns and stops).",
                Type::kCounter,
                [engine] { return static_cast<double>(engine->WriteStallMicros()) / 1e6; });
  // ChainFire's own: how far this member's applied state trails what it knows is committed.
  r.AddCallback("chainfire_server_apply_lag_entries",
                "Committed log entries this member has not applied yet.", Type::kGauge, [host] {
                  const uint64_t c = host->commit_index(), a = host->applied_index();
                  return static_cast<double>(c > a ? c - a : 0);
                });
  r.AddCallback("chainfire_server_follower_lag_entries",
                "On the leader: log entries not yet replicated to each follower.", Type::kGauge,
                {"To"}, [host] {
                  Registry::Samples out;
                  for (const auto& [id, lag] : host->follower_lag()) {
                    out.push_back({{HexId(id)}, static_cast<double>(lag)});
                  }
                  return out;
                });
  r.AddCallback("chainfire_server_term", "The Raft term this member is in.", Type::kGauge,
                [host] { return static_cast<double>(host->term()); });
  RegisterProcessMetrics(r);
}

HealthCheck::HealthCheck(NodeHost* host, Registry& registry, std::chrono::milliseconds timeout)
    : host_(host),
      timeout_(timeout),
      success_(registry
                   .AddCounter("etcd_server_health_success",
                               "The total number of successful health checks")
                   ->Get()),
      failures_(
          registry
              .AddCounter("etcd_server_health_failures", "The total number of failed health checks")
              ->Get()) {}

bool HealthCheck::Check() {
  bool healthy = host_->kv().Alarms().empty() && host_->leader() != 0;
  if (healthy) {
    // A quorum read through Raft, as etcd's QGET: the read completes only with a majority.
    struct Outcome {
      std::mutex mu;
      std::condition_variable cv;
      bool done = false, ok = false;
    };
    auto outcome = std::make_shared<Outcome>();
    host_->LinearizableRead(
        [outcome](absl::Status s) {
          {
            std::lock_guard<std::mutex> l(outcome->mu);
            outcome->done = true;
            outcome->ok = s.ok();
          }
          outcome->cv.notify_all();
        },
        NodeHost::ReadWork::kPoint);
    std::unique_lock<std::mutex> l(outcome->mu);
    healthy = outcome->cv.wait_for(l, timeout_, [&] { return outcome->done; }) && outcome->ok;
  }
  (healthy ? success_ : failures_)->Add();
  return healthy;
}

http::Response HealthCheck::Serve(const http::Request& request) {
  if (request.method != "GET") return MethodNotAllowed();
  http::Response r;
  const bool healthy = Check();
  r.status = healthy ? 200 : 503;
  r.body = healthy ? "{\"health\":\"true\"}" : "{\"health\":\"false\"}";
  return r;
}

std::map<std::string, http::Handler> MetricsRoutes(Registry& registry, HealthCheck* health) {
  std::map<std::string, http::Handler> routes;
  routes["/metrics"] = [&registry](const http::Request& request) {
    if (request.method != "GET") return MethodNotAllowed();
    http::Response r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = registry.Render();
    return r;
  };
  routes["/health"] = [health](const http::Request& request) { return health->Serve(request); };
  return routes;
}

std::map<std::string, http::Handler> ClientHttpRoutes(Registry& registry, HealthCheck* health,
                                                      const std::string& server_version,
                                                      const std::string& cluster_version) {
  std::map<std::string, http::Handler> routes = MetricsRoutes(registry, health);
  const std::string body = absl::StrCat("{\"etcdserver\":\"", server_version,
                                        "\",\"etcdcluster\":\"", cluster_version, "\"}");
  routes["/version"] = [body](const http::Request& request) {
    if (request.method != "GET" && request.method != "HEAD") return MethodNotAllowed();
    http::Response r;
    r.content_type = "application/json";
    r.body = body;
    return r;
  };
  return routes;
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> GrpcMetricsInterceptor(
    Registry& registry) {
  return std::make_unique<CountingInterceptorFactory>(registry);
}

}  // namespace chainfire::server
