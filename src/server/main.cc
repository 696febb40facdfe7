// chainfire: one member of a fixed-membership cluster serving the etcd v3 gRPC API.
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <type_traits>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "chainfire/backup/state_dump.h"
#include "chainfire/common/check.h"
#include "chainfire/common/sockets.h"
#include "chainfire/gateway/json_gateway.h"
#include "chainfire/server/auth_service.h"
#include "chainfire/server/auto_compactor.h"
#include "chainfire/server/client_port.h"
#include "chainfire/server/grpc_callback_threads.h"
#include "chainfire/server/logging.h"
#include "chainfire/server/member_tls.h"
#include "chainfire/server/observability.h"
#include "chainfire/server/scheduling.h"
#include "chainfire/server/services.h"
#include "chainfire/storage/power_loss_fs.h"
#include "chainfire/storage/raft_format.h"
#include "chainfire/tls/cipher_suites.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/server_posix.h"
#include "spdlog/spdlog.h"

namespace cf = chainfire;
using cf::server::ClusterSpec;

namespace {

struct Flags {
  std::string name = "default";
  std::string data_dir;
  std::string listen_client_urls = "http://127.0.0.1:2379";
  std::string advertise_client_urls;
  std::string listen_client_http_urls;  // HTTP only: the JSON gateway, /version, /health
  std::string listen_peer_urls = "http://127.0.0.1:2380";
  std::string initial_advertise_peer_urls = "http://127.0.0.1:2380";
  std::string initial_cluster;
  std::string initial_cluster_token = "etcd-cluster";
  std::string initial_cluster_state = "new";
  int heartbeat_interval = 100;
  int election_timeout = 1000;
  int64_t max_request_bytes = 1572864;
  int64_t quota_backend_bytes = 0;
  std::string auto_compaction_mode = "periodic";
  int watch_progress_notify_ms = 600000;
  std::string auto_compaction_retention = "0";
  std::string log_level = "info";
  std::string logger = "capnslog";
  std::string log_outputs = "default";
  uint64_t snapshot_count = 100000;
  uint64_t snapshot_catchup_entries = 5000;
  cf::server::MemberTlsFlags tls;  // https:// client and peer URLs
  std::string cipher_suites;
  std::string listen_metrics_urls;  // /metrics and /health (http:// only, for now)
  std::string metrics = "basic";
  std::string auth_token = "simple";
  int64_t auth_token_ttl = 300;
  int bcrypt_cost = 10;
  std::string cpu_scheduling = "auto";
  int grpc_callback_threads = 1;
  std::string peer_transport = "links";
  bool testing_power_loss_fs = false;
  bool testing_lying_wal_sync = false;
  std::string testing_peer_dial;
};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "chainfire: %s\n", message.c_str());
  std::exit(1);
}

template <typename T>
T OrDie(absl::StatusOr<T> v) {
  if (!v.ok()) Die(std::string(v.status().message()));
  return std::move(*v);
}

void OrDie(const absl::Status& s) {
  if (!s.ok()) Die(std::string(s.message()));
}

// First boot records the membership; later boots must name the same one.
void CheckIdentity(cf::storage::Engine* engine, const ClusterSpec& spec, uint64_t self) {
  const std::string record = cf::server::IdentityRecord(spec, self);
  auto stored =
      engine->Get(cf::storage::Column::kRaftState, cf::storage::raft_format::kIdentityKey);
  if (stored.ok()) {
    if (*stored != record) {
      Die(absl::StrCat(
          "the data dir ", engine->dir(), " belongs to another membership.\n  data dir holds: ",
          *stored, "\n  flags say:      ", record,
          "\nMembership is fixed at boot. To change it, take a backup, start a new cluster with "
          "the new --initial-cluster and an empty data dir, and restore the backup."));
    }
    return;
  }
  if (!absl::IsNotFound(stored.status())) Die(std::string(stored.status().message()));
  rocksdb::WriteBatch batch;
  // The membership is kept for offline backups (chainfire-backup save --data-dir).
  cf::storage::raft_format::PutIdentity(engine, &batch, record,
                                        cf::server::MembershipHeader(spec).SerializeAsString());
  OrDie(engine->Write(&batch, true));
}

// gRPC's own log lines (a refused TLS handshake and OpenSSL's reason, for one) in the member's
// log, in its format. GRPC_VERBOSITY (default ERROR) still chooses what gRPC logs.
void LogFromGrpc(gpr_log_func_args* args) {
  const char* slash = std::strrchr(args->file, '/');
  const char* file = slash ? slash + 1 : args->file;
  switch (args->severity) {
    case GPR_LOG_SEVERITY_ERROR:
      spdlog::error("grpc: {} ({}:{})", args->message, file, args->line);
      break;
    case GPR_LOG_SEVERITY_INFO:
      spdlog::info("grpc: {} ({}:{})", args->message, file, args->line);
      break;
    default:
      spdlog::debug("grpc: {} ({}:{})", args->message, file, args->line);
  }
}

sigset_t BlockShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

}  // namespace

int main(int argc, char** argv) {
  // gRPC's mutexes are absl::Mutex; Debian's Abseil checks every lock order for cycles, which
  // costs a few percent of a loaded member's CPU. Our own locks are std::mutex.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Block before any thread starts so every thread inherits the mask; main waits for them.
  sigset_t signals = BlockShutdownSignals();

  Flags f;
  CLI::App app{"chainfire: a fixed-membership control-plane store serving the etcd v3 API"};
  app.set_version_flag("--version", std::string("chainfire ") + cf::server::kChainfireVersion +
                                        " (etcd API " + cf::server::kEtcdApiVersion + ")");
  // Every flag also reads CHAINFIRE_<NAME>. A bool is a bare flag or =true/false, as etcd's Go
  // flags.
  auto flag = [&](const std::string& name, auto& var, const std::string& help) {
    std::string env = "CHAINFIRE_";
    for (char c : name) env += c == '-' ? '_' : static_cast<char>(std::toupper(c));
    if constexpr (std::is_same_v<std::decay_t<decltype(var)>, bool>) {
      return app.add_flag("--" + name, var, help)->envname(env);
    } else {
      return app.add_option("--" + name, var, help)->envname(env)->capture_default_str();
    }
  };
  flag("name", f.name, "Human-readable name of this member; must appear in --initial-cluster");
  flag("data-dir", f.data_dir, "Path to the data directory (default: <name>.chainfire)");
  flag("listen-client-urls", f.listen_client_urls, "URLs to listen on for client traffic");
  flag("listen-client-http-urls", f.listen_client_http_urls,
       "URLs to listen on for HTTP only client traffic: the JSON gateway, /version, /health, "
       "/metrics (http:// client URLs serve it beside gRPC already)");
  flag("advertise-client-urls", f.advertise_client_urls,
       "Client URLs to publish to the cluster (default: --listen-client-urls and "
       "--listen-client-http-urls)");
  flag("listen-peer-urls", f.listen_peer_urls, "URLs to listen on for peer traffic");
  flag("cert-file", f.tls.cert_file,
       "Path to the client server TLS cert file (https:// client URLs)");
  flag("key-file", f.tls.key_file, "Path to the client server TLS key file");
  flag("trusted-ca-file", f.tls.trusted_ca_file,
       "Path to the client server TLS trusted CA cert file (one or more CAs)");
  flag("client-cert-auth", f.tls.client_cert_auth,
       "Enable client cert authentication (clients must present a cert from --trusted-ca-file)");
  flag("client-crl-file", f.tls.client_crl_file,
       "Path to the client certificate revocation list file (re-read when it changes)");
  flag("peer-cert-file", f.tls.peer_cert_file, "Path to the peer server TLS cert file");
  flag("peer-key-file", f.tls.peer_key_file, "Path to the peer server TLS key file");
  flag("peer-trusted-ca-file", f.tls.peer_trusted_ca_file,
       "Path to the peer server TLS trusted CA file (one or more CAs)");
  flag("peer-client-cert-auth", f.tls.peer_client_cert_auth,
       "Enable peer client cert authentication (peers must present a cert from "
       "--peer-trusted-ca-file)");
  flag("peer-crl-file", f.tls.peer_crl_file,
       "Path to the peer certificate revocation list file (re-read when it changes)");
  flag("peer-cert-allowed-cn", f.tls.peer_cert_allowed_cn,
       "Allowed CN for inter-peer authentication (with --peer-client-cert-auth)");
  flag("peer-cert-allowed-hostname", f.tls.peer_cert_allowed_hostname,
       "Allowed TLS hostname (a DNS or IP SAN) for inter-peer authentication");
  flag("cipher-suites", f.cipher_suites,
       "Comma-separated TLS 1.2 cipher suites (Go's names, as etcd); applies to every TLS port "
       "and peer channel (default: gRPC's)");
  flag("tls-max-connection-age", f.tls.max_connection_age,
       "Servers with a TLS port close each connection after about this long (clients reconnect "
       "and are checked again), so one opened under a removed CA or certificate ends; 0: never");
  flag("tls-max-connection-age-grace", f.tls.max_connection_age_grace,
       "How long calls of a connection past its age may take before it is cut");
  flag("listen-metrics-urls", f.listen_metrics_urls,
       "URLs to serve /metrics (Prometheus) and /health on, as etcd's (http:// only)");
  flag("metrics", f.metrics,
       "basic or extensive (as etcd; the same set today), or off: no timings and no gRPC "
       "counters (to measure what metrics cost)")
      ->check(CLI::IsMember({"basic", "extensive", "off"}));
  flag("initial-advertise-peer-urls", f.initial_advertise_peer_urls,
       "This member's peer URLs as the others dial them; must match its --initial-cluster entry");
  flag("initial-cluster", f.initial_cluster,
       "The fixed membership: name=peer-url,... (default: <name>=<initial-advertise-peer-urls>)");
  flag("initial-cluster-token", f.initial_cluster_token,
       "Token that makes the cluster and member IDs unique");
  flag("initial-cluster-state", f.initial_cluster_state,
       "'new' to bootstrap; 'existing' to require an existing data dir")
      ->check(CLI::IsMember({"new", "existing"}));
  flag("heartbeat-interval", f.heartbeat_interval, "Time (in milliseconds) of a heartbeat")
      ->check(CLI::Range(1, 60000));
  flag("election-timeout", f.election_timeout, "Time (in milliseconds) for an election to time out")
      ->check(CLI::Range(1, 600000));
  flag("max-request-bytes", f.max_request_bytes, "Maximum client request size in bytes")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  flag("quota-backend-bytes", f.quota_backend_bytes,
       "Raise a NOSPACE alarm when the backend exceeds this size (0: etcd's default, 2 GiB)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 50));
  flag("auto-compaction-mode", f.auto_compaction_mode,
       "periodic (retention is a duration) or revision (retention is a revision count)")
      ->check(CLI::IsMember({"periodic", "revision"}));
  flag("auto-compaction-retention", f.auto_compaction_retention,
       "How much history auto-compaction keeps: e.g. 1h, 30m, 90s, a number of hours "
       "(periodic), or a revision count (revision); 0 disables it");
  flag("experimental-watch-progress-notify-interval-ms", f.watch_progress_notify_ms,
       "How long a progress_notify watch may stay quiet before a progress response (ms)")
      ->check(CLI::Range(100, 86400000));
  flag("snapshot-count", f.snapshot_count,
       "Number of applied entries between Raft snapshots (each truncates the log)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40));
  flag("experimental-snapshot-catchup-entries", f.snapshot_catchup_entries,
       "Entries kept behind a snapshot so slightly lagging followers need no snapshot")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40));
  flag("auth-token", f.auth_token,
       "How auth tokens are made: simple (etcd's default: registered through the log on every "
       "member) or jwt,pub-key=PATH,priv-key=PATH,sign-method=RS256|ES256|...,ttl=5m");
  flag("auth-token-ttl", f.auth_token_ttl,
       "Seconds a simple token lives without use (etcd's default, 300)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 31));
  flag("bcrypt-cost", f.bcrypt_cost, "bcrypt cost of stored password hashes (4..31, default 10)")
      ->check(CLI::Range(4, 31));
  flag("log-level", f.log_level, "debug, info, warn or error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  flag("logger", f.logger,
       "capnslog (text lines) or zap (JSON lines with zap's field names, as etcd's zap logger)")
      ->check(CLI::IsMember({"capnslog", "zap"}));
  flag("log-outputs", f.log_outputs,
       "Comma-separated outputs: default (stderr), stderr, stdout, or file paths");
  flag("cpu-scheduling", f.cpu_scheduling,
       "CPU scheduling policy: auto (SCHED_BATCH for gRPC's and RocksDB's threads, so a woken "
       "poller does not preempt a running thread; the kernel's default for ChainFire's own, "
       "which keep Raft's time), normal (the kernel's default everywhere) or batch (SCHED_BATCH "
       "everywhere)")
      ->check(CLI::IsMember({"auto", "batch", "normal"}));
  flag("grpc-callback-threads", f.grpc_callback_threads,
       "How many of gRPC's callback threads run the client and peer ports' calls: 1 (one thread "
       "polls and runs every completion, no hand-over of the polling between threads on each "
       "wake-up) or 0 (all of gRPC's own pool: half the cores, at least 2, at most 16)")
      ->check(CLI::Range(0, 16));
  flag("peer-transport", f.peer_transport,
       "How Raft messages travel between members when peer URLs are http://: links (plain TCP "
       "connections the node thread reads and writes; gRPC keeps snapshots and everything else "
       "on the same port) or grpc (a gRPC stream per peer, as with TLS). Members of either kind "
       "talk to each other")
      ->check(CLI::IsMember({"links", "grpc"}));
  app.add_flag("--testing-power-loss-fs", f.testing_power_loss_fs,
               "TEST ONLY: keep writes since the last fsync in process memory, so SIGKILL loses "
               "what a power loss would")
      ->group("Testing (never in production)");
  app.add_flag("--testing-lying-wal-sync", f.testing_lying_wal_sync,
               "TEST ONLY (with --testing-power-loss-fs): WAL fsyncs report success without "
               "writing, so a kill loses acknowledged writes")
      ->group("Testing (never in production)");
  app.add_option("--testing-peer-dial", f.testing_peer_dial,
                 "TEST ONLY: name=host:port,... dial these addresses instead of the members' peer "
                 "URLs (per-link proxies that cut the network between two members)")
      ->group("Testing (never in production)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  // Before any thread starts: every thread inherits the policy.
  OrDie(cf::server::ApplyCpuScheduling(f.cpu_scheduling));
  OrDie(cf::server::ConfigureLogging(f.logger, f.log_outputs, f.log_level, f.name));
  cf::metrics::SetTimingEnabled(f.metrics != "off");
  gpr_set_log_function(LogFromGrpc);

  if (f.election_timeout < 5 * f.heartbeat_interval) {
    Die(absl::StrCat("--election-timeout[", f.election_timeout,
                     "ms] should be at least 5 times --heartbeat-interval[", f.heartbeat_interval,
                     "ms]"));
  }
  const cf::server::AutoCompactionPolicy compaction =
      OrDie(cf::server::ParseAutoCompaction(f.auto_compaction_mode, f.auto_compaction_retention));
  // Before any gRPC object exists: gRPC reads the list once, when it initializes.
  OrDie(cf::tls::ApplyCipherSuites(f.cipher_suites));
  if (f.data_dir.empty()) f.data_dir = f.name + ".chainfire";
  if (f.advertise_client_urls.empty()) {
    f.advertise_client_urls = f.listen_client_urls;
    if (!f.listen_client_http_urls.empty()) {
      absl::StrAppend(&f.advertise_client_urls, ",", f.listen_client_http_urls);
    }
  }
  if (f.initial_cluster.empty()) f.initial_cluster = f.name + "=" + f.initial_advertise_peer_urls;
  const auto listen_client =
      OrDie(cf::server::ParseUrls(f.listen_client_urls, "--listen-client-urls"));
  const auto advertise_client =
      OrDie(cf::server::ParseUrls(f.advertise_client_urls, "--advertise-client-urls"));
  const auto listen_peer = OrDie(cf::server::ParseUrls(f.listen_peer_urls, "--listen-peer-urls"));
  const auto advertise_peer =
      OrDie(cf::server::ParseUrls(f.initial_advertise_peer_urls, "--initial-advertise-peer-urls"));
  ClusterSpec spec =
      OrDie(cf::server::ParseInitialCluster(f.initial_cluster, f.initial_cluster_token));
  const cf::server::MemberSpec* self = spec.Find(f.name);
  if (self == nullptr) {
    Die(absl::StrCat("--name ", f.name, " does not appear in --initial-cluster ",
                     f.initial_cluster));
  }
  for (const std::string& u : advertise_peer) {
    if (std::find(self->peer_urls.begin(), self->peer_urls.end(), u) == self->peer_urls.end()) {
      Die(absl::StrCat("--initial-advertise-peer-urls ", u, " is not listed for ", f.name,
                       " in --initial-cluster"));
    }
  }
  // --auth-token: a JWT option with unreadable or mismatched keys refuses to start.
  std::unique_ptr<cf::auth::JwtTokens> jwt;
  if (f.auth_token != "simple") jwt = OrDie(cf::auth::JwtTokens::FromOption(f.auth_token));
  // TLS: checked now, so a bad certificate or key refuses to start, naming the file.
  std::vector<std::string> all_peer_urls = listen_peer;
  for (const cf::server::MemberSpec& m : spec.members) {
    all_peer_urls.insert(all_peer_urls.end(), m.peer_urls.begin(), m.peer_urls.end());
  }
  f.tls.data_dir = f.data_dir;
  const auto listen_metrics =
      f.listen_metrics_urls.empty()
          ? std::vector<std::string>{}
          : OrDie(cf::server::ParseUrls(f.listen_metrics_urls, "--listen-metrics-urls"));
  const auto listen_client_http =
      f.listen_client_http_urls.empty()
          ? std::vector<std::string>{}
          : OrDie(cf::server::ParseUrls(f.listen_client_http_urls, "--listen-client-http-urls"));
  std::vector<std::string> tls_client_urls = listen_client;
  tls_client_urls.insert(tls_client_urls.end(), listen_metrics.begin(), listen_metrics.end());
  tls_client_urls.insert(tls_client_urls.end(), listen_client_http.begin(),
                         listen_client_http.end());
  cf::server::MemberTls tls =
      OrDie(cf::server::MemberTls::FromFlags(f.tls, tls_client_urls, all_peer_urls));
  std::function<std::shared_ptr<ssl_ctx_st>()> https_contexts;  // https:// HTTP listeners
  const auto https = [](const std::string& u) { return absl::StartsWith(u, "https://"); };
  if (std::any_of(listen_metrics.begin(), listen_metrics.end(), https) ||
      std::any_of(listen_client_http.begin(), listen_client_http.end(), https)) {
    https_contexts = OrDie(tls.HttpsContexts());
  }
  const std::shared_ptr<grpc::ChannelCredentials> peer_channel_credentials =
      tls.PeerChannelCredentials();

  if (!f.testing_peer_dial.empty()) {
    for (absl::string_view item : absl::StrSplit(f.testing_peer_dial, ',')) {
      const std::pair<std::string, std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
      auto it = std::find_if(spec.members.begin(), spec.members.end(),
                             [&](const cf::server::MemberSpec& m) { return m.name == kv.first; });
      if (it == spec.members.end() || kv.second.empty()) {
        Die(absl::StrCat("--testing-peer-dial: ", item, " does not name a member and an address"));
      }
      it->dial_override = kv.second;
      spdlog::warn("TEST ONLY: dialing {} at {} instead of {}", it->name, kv.second,
                   it->peer_urls[0]);
    }
  }

  const bool fresh = !std::filesystem::exists(std::filesystem::path(f.data_dir) / "CURRENT");
  const uint64_t base_cluster_id = spec.cluster_id;  // before any restore salt
  bool recovering = false;
  std::string learned_salt;
  if (fresh) {
    // A wiped member must not vote with a forgotten log: ask the others whether we joined.
    bool cluster_running = false;
    for (const cf::server::MemberSpec& m : spec.members) {
      if (m.id == self->id) continue;
      auto probe = cf::transport::ProbePeer(m.DialAddress(), spec.cluster_id, self->id, 1000,
                                            peer_channel_credentials);
      if (!probe.ok()) continue;
      ClusterSpec salted = spec;
      if (!probe->cluster_salt().empty()) salted.SaltClusterId(probe->cluster_salt());
      if (probe->cluster_id() == spec.cluster_id ||
          (!probe->cluster_salt().empty() && probe->cluster_id() == salted.cluster_id)) {
        cluster_running = true;
        learned_salt = probe->cluster_salt();
      }
      if (f.initial_cluster_state == "new" && probe->bootstrapped()) {
        Die(absl::StrCat("the data dir ", f.data_dir, " is empty, but member ", m.name,
                         " reports that ", f.name, " already joined cluster ",
                         cf::server::HexId(spec.cluster_id),
                         ". A wiped member must not rejoin with --initial-cluster-state=new: its "
                         "forgotten log and vote could lose committed writes. Start it with "
                         "--initial-cluster-state=existing to recover it from the others, or "
                         "restore its data dir from a backup."));
      }
    }
    if (f.initial_cluster_state == "existing") {
      if (!cluster_running) {
        Die(absl::StrCat(
            "--initial-cluster-state=existing but the data dir ", f.data_dir,
            " is empty and no other member of cluster ", cf::server::HexId(spec.cluster_id),
            " answered. An empty member can only rejoin a running cluster (disk-loss "
            "recovery); to rebuild a cluster, restore a backup with chainfire-backup restore."));
      }
      recovering = true;
      spdlog::warn(
          "the data dir {} is empty: rejoining in disk-loss recovery (no votes, not "
          "counted toward commit until caught up with the leader)",
          f.data_dir);
    }
  }

  if (f.testing_lying_wal_sync && !f.testing_power_loss_fs) {
    Die("--testing-lying-wal-sync needs --testing-power-loss-fs");
  }
  std::unique_ptr<rocksdb::Env> power_loss_env;
  if (f.testing_power_loss_fs) {
    power_loss_env = cf::storage::NewPowerLossEnv(f.testing_lying_wal_sync);
    spdlog::warn("TEST ONLY: power-loss file system{}: a kill loses unsynced writes",
                 f.testing_lying_wal_sync ? " with LYING WAL fsyncs" : "");
  }
  auto engine = OrDie(cf::storage::Engine::Open(f.data_dir, power_loss_env.get()));
  // Table files unchanged since an earlier start were not read by Open: read them now, while
  // serving (RocksDB checks every block it reads meanwhile). Damage stops the member.
  engine->CheckTablesInBackground([dir = f.data_dir](const absl::Status& s) {
    cf::Fatal(absl::StrCat("data dir ", dir, " is damaged: ", s.message(),
                           "; stopping: a damaged data dir must not be used"));
  });
  if (!learned_salt.empty()) {
    rocksdb::WriteBatch batch;  // a recovering member of a restored cluster keeps its ID
    cf::storage::raft_format::PutClusterSalt(engine.get(), &batch, learned_salt);
    OrDie(engine->Write(&batch, true));
  }
  std::string cluster_salt;
  // A data dir restored from a backup belongs to a cluster whose ID mixes in the backup's hash.
  if (auto salt =
          engine->Get(cf::storage::Column::kRaftState, cf::storage::raft_format::kClusterSaltKey);
      salt.ok()) {
    spec.SaltClusterId(*salt);
    cluster_salt = *salt;
  }
  {
    std::error_code ec;  // temporary files of interrupted Maintenance.Snapshot calls
    std::filesystem::remove_all(std::filesystem::path(f.data_dir) / "backup-tmp", ec);
  }
  CheckIdentity(engine.get(), spec, self->id);

  cf::server::NodeHostOptions opts;
  opts.name = f.name;
  opts.member_id = self->id;
  opts.cluster = spec;
  opts.client_urls = advertise_client;
  opts.heartbeat_ms = f.heartbeat_interval;
  opts.election_ticks = std::max(2, f.election_timeout / f.heartbeat_interval);
  opts.watch_progress_interval = std::chrono::milliseconds(f.watch_progress_notify_ms);
  opts.snapshot_count = f.snapshot_count;
  opts.snapshot_catchup_entries = f.snapshot_catchup_entries;
  opts.recovering = recovering;
  opts.auth_token_ttl_ms = f.auth_token_ttl * 1000;
  auto host = OrDie(cf::server::NodeHost::Open(opts, engine.get()));

  std::map<uint64_t, std::string> peers;
  for (const cf::server::MemberSpec& m : spec.members) peers[m.id] = m.DialAddress();
  cf::server::NodeHost* h = host.get();
  cf::transport::PeerTransport transport(
      spec.cluster_id, self->id, peers,
      [h](std::vector<cf::raft::Message> m) { h->Deliver(std::move(m)); },
      [h, base_cluster_id, cluster_salt](const cf::peer::ProbeRequest& req) {
        cf::peer::ProbeResponse resp;
        resp.set_cluster_id(h->cluster_id());
        resp.set_applied_index(h->applied_index());
        resp.set_cluster_salt(cluster_salt);
        if (req.cluster_id() == h->cluster_id() || req.cluster_id() == base_cluster_id) {
          for (const auto& m : h->Members()) {
            if (m.id() == req.from() && !m.name().empty()) resp.set_bootstrapped(true);
          }
        }
        return resp;
      },
      peer_channel_credentials);

  transport.SetLeaseHandlers(
      [h](const etcdserverpb::LeaseKeepAliveRequest& req)
          -> absl::StatusOr<etcdserverpb::LeaseKeepAliveResponse> {
        if (!h->is_leader()) return cf::server::ErrLeaderChanged();
        return h->KeepAliveLocal(req.id());
      },
      [h](const etcdserverpb::LeaseTimeToLiveRequest& req)
          -> absl::StatusOr<etcdserverpb::LeaseTimeToLiveResponse> {
        if (!h->is_leader()) return cf::server::ErrLeaderChanged();
        return h->TimeToLiveLocal(req);
      });
  transport.SetSnapshotHandlers(
      [h](const cf::raft::Message& m) { return h->WriteSnapshotForPeer(m); },
      &cf::server::NodeHost::VerifyReceivedSnapshot, h->snapshot_dir());
  // Peer links need the port to themselves (gRPC gets the other connections handed over);
  // with peer TLS, gRPC listens and the messages go over its streams.
  const bool peer_links = f.peer_transport == "links" && !tls.peer_tls();
  grpc::ServerBuilder peer_builder;
  for (const std::string& u : listen_peer) {
    if (!peer_links) {
      peer_builder.AddListeningPort(cf::server::HostPort(u), tls.PeerServerCredentials());
    }
  }
  if (tls.peer_tls()) tls.LimitConnectionAge(&peer_builder);
  peer_builder.SetMaxReceiveMessageSize(512 << 20);
  peer_builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  peer_builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  peer_builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  peer_builder.RegisterService(transport.service());
  std::unique_ptr<grpc::Server> peer_server = peer_builder.BuildAndStart();
  if (!peer_server) Die("cannot listen on --listen-peer-urls " + f.listen_peer_urls);
  if (peer_links) {
    std::vector<std::string> host_ports;
    for (const std::string& u : listen_peer) host_ports.push_back(cf::server::HostPort(u));
    if (absl::Status s =
            transport.StartLinks(host_ports,
                                 [server = peer_server.get()](int fd, const std::string& peer) {
                                   cf::RecordHandedOverSocket(fd, peer);
                                   grpc::AddInsecureChannelFromFd(server, fd);
                                 });
        !s.ok()) {
      Die("cannot listen on --listen-peer-urls " + f.listen_peer_urls + ": " + s.ToString());
    }
  }

  const int64_t quota_bytes = f.quota_backend_bytes > 0 ? f.quota_backend_bytes : int64_t{2} << 30;
  cf::server::Quota quota(host.get(), engine.get(), quota_bytes);
  cf::metrics::Registry& registry = cf::metrics::Default();
  cf::server::RegisterMemberMetrics(registry, host.get(), engine.get(), quota_bytes);
  cf::server::HealthCheck health(host.get(), registry);
  cf::server::AuthGuard guard(host.get(), f.tls.client_cert_auth, jwt.get());
  cf::server::KvService kv(host.get(), f.max_request_bytes, &quota, &guard);
  cf::server::ClusterService cluster(host.get(), &guard);
  cf::server::MaintenanceService maintenance(host.get(), engine.get(), &guard);
  cf::server::WatchService watch(host.get(), static_cast<size_t>(f.max_request_bytes), &guard);
  cf::server::LeaseService lease(host.get(), &quota, &guard);
  cf::server::AuthService auth_service(&guard, f.bcrypt_cost, f.max_request_bytes);
  grpc::ServerBuilder client_builder;
  // https:// client URLs: gRPC over TLS on its own listener. http:// ones are shared with
  // HTTP/1.1 (below): gRPC gets their HTTP/2 connections handed over.
  for (const std::string& u : listen_client) {
    if (https(u)) {
      client_builder.AddListeningPort(cf::server::HostPort(u), tls.ClientServerCredentials(u));
    }
  }
  if (std::any_of(listen_client.begin(), listen_client.end(),
                  [](const std::string& u) { return absl::StartsWith(u, "https://"); })) {
    tls.LimitConnectionAge(&client_builder);
  }
  // As etcd: the gRPC receive limit is the request limit plus 512 KiB of envelope.
  client_builder.SetMaxReceiveMessageSize(static_cast<int>(f.max_request_bytes + 512 * 1024));
  client_builder.SetMaxSendMessageSize(INT32_MAX);
  // etcd clients ping idle connections (etcdctl every 10 s); gRPC's defaults would answer with
  // GOAWAY too_many_pings.
  client_builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  client_builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  client_builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  if (f.metrics != "off") {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> counting;
    counting.push_back(cf::server::GrpcMetricsInterceptor(registry));
    client_builder.experimental().SetInterceptorCreators(std::move(counting));
  }
  client_builder.RegisterService(&kv);
  client_builder.RegisterService(&cluster);
  client_builder.RegisterService(&maintenance);
  client_builder.RegisterService(&watch);
  client_builder.RegisterService(&lease);
  client_builder.RegisterService(&auth_service);
  std::unique_ptr<grpc::Server> client_server = client_builder.BuildAndStart();
  if (!client_server) Die("cannot listen on --listen-client-urls " + f.listen_client_urls);

  // The HTTP side of the client port: the JSON gateway calls the services above in-process.
  grpc::ChannelArguments gateway_args;
  gateway_args.SetMaxReceiveMessageSize(-1);
  gateway_args.SetMaxSendMessageSize(-1);
  cf::gateway::JsonGateway gateway(client_server->InProcessChannel(gateway_args));
  cf::server::ClientHttpConfig client_http;
  client_http.client_urls = listen_client;
  client_http.http_urls = listen_client_http;
  client_http.max_request_bytes = f.max_request_bytes;
  client_http.https_contexts = https_contexts;
  std::vector<std::unique_ptr<cf::http::HttpServer>> client_http_servers = OrDie(
      cf::server::StartClientHttp(client_http, client_server.get(), &gateway, registry, &health));

  // Before serving: the callback threads beyond --grpc-callback-threads are held (see
  // grpc_callback_threads.h) until shutdown.
  std::unique_ptr<cf::server::CallbackThreadHold> callback_threads;
  if (f.grpc_callback_threads > 0) {
    callback_threads = cf::server::CallbackThreadHold::Hold(
        client_server.get(), f.grpc_callback_threads, absl::Seconds(5));
    spdlog::info("gRPC callback threads: {} of {} in use",
                 callback_threads->pool_threads() - callback_threads->held(),
                 callback_threads->pool_threads());
  }
  host->Start(&transport);
  tls.Start();
  // /metrics and /health: one listener for the http:// URLs, one for the https:// ones.
  std::vector<std::unique_ptr<cf::http::HttpServer>> metrics_servers;
  for (const bool https : {false, true}) {
    std::vector<std::string> host_ports;
    for (const std::string& u : listen_metrics) {
      if (absl::StartsWith(u, "https://") == https) host_ports.push_back(cf::server::HostPort(u));
    }
    if (host_ports.empty()) continue;
    cf::http::HttpServer::Options options;
    if (https) options.tls = https_contexts;
    metrics_servers.push_back(OrDie(cf::http::HttpServer::Start(
        host_ports, cf::server::MetricsRoutes(registry, &health), options)));
  }
  cf::server::AutoCompactor auto_compactor(host.get(), compaction);
  spdlog::info("member {} ({}) of cluster {} serving clients on {} and peers on {}", f.name,
               cf::server::HexId(self->id), cf::server::HexId(spec.cluster_id),
               f.listen_client_urls, f.listen_peer_urls);

  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("received signal {}, shutting down", sig);
  // As etcd: a leader hands leadership to an up-to-date follower first, so a rolling restart
  // costs no election timeout.
  host->HandOverLeadership(std::chrono::milliseconds(f.election_timeout));
  // In-flight requests are answered (the node still runs) or cancelled at the deadline.
  auto_compactor.Stop();
  metrics_servers.clear();
  client_http_servers.clear();                        // cancels the gateway's calls in flight
  if (callback_threads) callback_threads->Release();  // before gRPC's pool is joined
  client_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(3));
  maintenance.Stop();
  auth_service.Stop();
  host->Stop();
  transport.Stop();
  peer_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  host.reset();
  // What the memtables hold goes to table files now, so the next start replays no WAL.
  if (absl::Status s = engine->FlushAll(); !s.ok())
    spdlog::warn("flush at shutdown: {}", s.ToString());
  engine.reset();
  spdlog::info("stopped");
  return 0;
}
