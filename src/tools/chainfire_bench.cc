// chainfire-bench: a closed-loop load generator for any etcd v3 gRPC endpoint (ChainFire or
// etcd), so both are measured with the same client. Each of --clients outstanding requests is
// reissued as soon as it completes, spread over --conns channels and the --endpoints; after
// --seconds it prints one JSON line: operations, errors, throughput and latency percentiles.
// Every request still in flight at the deadline is waited for and counted. Exits 1 when no
// request succeeded.
//
//   chainfire-bench --endpoints 127.0.0.1:2379,127.0.0.1:22379 --op put --clients 200
//   chainfire-bench --endpoints 127.0.0.1:2379 --op get --clients 200   (linearizable reads)
//   chainfire-bench --endpoints https://127.0.0.1:2379 --cacert ca.crt --cert c.crt --key c.key
//   chainfire-bench --endpoints 127.0.0.1:2379 --op fill --keys 1000000 --seconds 3600
//     (puts each of bench/0000000000 .. bench/<keys - 1> once, then stops; --seconds bounds it)
//
// Thread-safety: the callbacks run on gRPC's threads; counters are atomics, latencies are kept
// per client slot (one request in flight per slot).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "chainfire/tls/grpc_credentials.h"
#include "etcd/rpc.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string endpoints = "127.0.0.1:2379";
  std::string op = "put";  // put | get | get-serializable | fill
  int clients = 100;
  int conns = 10;
  double seconds = 10;
  int key_size = 8;
  int val_size = 256;
  int keys = 100000;                   // key space: keys are bench/<n> padded to key_size
  chainfire::tls::ClientTlsFlags tls;  // etcdctl's --cacert/--cert/--key
};

class Bench {
 public:
  Bench(const Options& o, std::shared_ptr<grpc::ChannelCredentials> credentials) : o_(o) {
    std::vector<std::string> eps;
    for (absl::string_view ep : absl::StrSplit(o.endpoints, ',', absl::SkipEmpty())) {
      if (!absl::ConsumePrefix(&ep, "https://")) absl::ConsumePrefix(&ep, "http://");
      eps.emplace_back(ep);
    }
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    for (int c = 0; c < o.conns; ++c) {
      args.SetInt("chainfire.bench.channel", c);  // distinct channels, not one shared
      auto ch = grpc::CreateCustomChannel(eps[c % eps.size()], credentials, args);
      stubs_.push_back(etcdserverpb::KV::NewStub(ch));
    }
    value_.assign(o.val_size, 'v');
    slots_.resize(o.clients);
    for (int i = 0; i < o.clients; ++i) slots_[i].rng.seed(i * 7919 + 1);
  }

  int64_t succeeded() const { return ok_.load(); }

  // Runs for the configured time; returns the JSON summary.
  std::string Run() {
    start_ = Clock::now();
    deadline_ = start_ + std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double>(o_.seconds));
    for (int i = 0; i < o_.clients; ++i) Issue(i);
    {
      std::unique_lock<std::mutex> l(mu_);
      // Bounded: every request carries a deadline, so every slot finishes.
      cv_.wait_for(l, std::chrono::duration<double>(o_.seconds + 30),
                   [&] { return finished_ == o_.clients; });
    }
    const double elapsed = std::chrono::duration<double>(last_done_ - start_).count();
    std::vector<double> lat;
    for (Slot& s : slots_) lat.insert(lat.end(), s.latencies_ms.begin(), s.latencies_ms.end());
    std::sort(lat.begin(), lat.end());
    auto pct = [&](double p) {
      return lat.empty() ? 0.0 : lat[std::min(lat.size() - 1, static_cast<size_t>(p * lat.size()))];
    };
    char buf[512];
    std::snprintf(buf, sizeof(buf),
                  "{\"op\":\"%s\",\"clients\":%d,\"conns\":%d,\"val_size\":%d,\"ok\":%lld,"
                  "\"errors\":%lld,\"seconds\":%.2f,\"ops_per_sec\":%.0f,\"p50_ms\":%.2f,"
                  "\"p99_ms\":%.2f,\"max_ms\":%.2f,\"first_error\":\"%s\"}",
                  o_.op.c_str(), o_.clients, o_.conns, o_.val_size,
                  static_cast<long long>(ok_.load()), static_cast<long long>(errors_.load()),
                  elapsed, elapsed > 0 ? ok_.load() / elapsed : 0.0, pct(0.5), pct(0.99),
                  lat.empty() ? 0.0 : lat.back(), first_error_.c_str());
    return buf;
  }

 private:
  struct Slot {
    std::mt19937_64 rng;
    std::unique_ptr<grpc::ClientContext> ctx;
    etcdserverpb::PutRequest put;
    etcdserverpb::PutResponse put_resp;
    etcdserverpb::RangeRequest range;
    etcdserverpb::RangeResponse range_resp;
    Clock::time_point sent;
    std::vector<double> latencies_ms;
  };

  std::string Key(Slot& s) {
    std::string k = "bench/" + std::to_string(s.rng() % o_.keys);
    if (static_cast<int>(k.size()) < o_.key_size) k.append(o_.key_size - k.size(), '0');
    return k;
  }

  void Issue(int i) {
    Slot& s = slots_[i];
    const auto now = Clock::now();
    if (now >= deadline_) {
      std::lock_guard<std::mutex> l(mu_);
      last_done_ = std::max(last_done_, now);
      if (++finished_ == o_.clients) cv_.notify_all();
      return;
    }
    s.ctx = std::make_unique<grpc::ClientContext>();
    s.ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    s.sent = now;
    auto* stub = stubs_[i % stubs_.size()].get();
    auto done = [this, i](grpc::Status st) { Done(i, st); };
    if (o_.op == "fill") {
      const int64_t n = next_fill_.fetch_add(1);
      if (n >= o_.keys) {
        std::lock_guard<std::mutex> l(mu_);
        last_done_ = std::max(last_done_, now);
        if (++finished_ == o_.clients) cv_.notify_all();
        return;
      }
      char key[32];
      std::snprintf(key, sizeof(key), "bench/%010lld", static_cast<long long>(n));
      s.put.set_key(key);
      s.put.set_value(value_);
      stub->async()->Put(s.ctx.get(), &s.put, &s.put_resp, done);
    } else if (o_.op == "put") {
      s.put.set_key(Key(s));
      s.put.set_value(value_);
      stub->async()->Put(s.ctx.get(), &s.put, &s.put_resp, done);
    } else {
      s.range.set_key(Key(s));
      s.range.set_serializable(o_.op == "get-serializable");
      stub->async()->Range(s.ctx.get(), &s.range, &s.range_resp, done);
    }
  }

  void Done(int i, const grpc::Status& st) {
    Slot& s = slots_[i];
    const auto now = Clock::now();
    if (st.ok()) {
      ++ok_;
      if (now <= deadline_) {
        s.latencies_ms.push_back(std::chrono::duration<double, std::milli>(now - s.sent).count());
      }
    } else if (errors_.fetch_add(1) == 0) {
      std::lock_guard<std::mutex> l(mu_);
      first_error_ = st.error_message();
    }
    Issue(i);
  }

  const Options o_;
  std::vector<std::unique_ptr<etcdserverpb::KV::Stub>> stubs_;
  std::string value_;
  std::vector<Slot> slots_;
  Clock::time_point start_, deadline_;
  std::atomic<int64_t> ok_{0}, errors_{0};
  std::atomic<int64_t> next_fill_{0};  // --op fill: the next key to write
  std::mutex mu_;
  std::condition_variable cv_;
  int finished_ = 0;               // guarded by mu_
  Clock::time_point last_done_{};  // guarded by mu_
  std::string first_error_;        // guarded by mu_
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"chainfire-bench: closed-loop load against etcd v3 gRPC endpoints"};
  app.add_option("--endpoints", o.endpoints, "comma-separated host:port list");
  app.add_option("--op", o.op,
                 "put | get (linearizable) | get-serializable | fill (each of --keys once)")
      ->check(CLI::IsMember({"put", "get", "get-serializable", "fill"}));
  app.add_option("--clients", o.clients, "requests kept in flight")->check(CLI::PositiveNumber);
  app.add_option("--conns", o.conns, "gRPC channels")->check(CLI::PositiveNumber);
  app.add_option("--seconds", o.seconds, "duration")->check(CLI::PositiveNumber);
  app.add_option("--key-size", o.key_size, "key length (bytes, padded)");
  app.add_option("--val-size", o.val_size, "value length (bytes)");
  app.add_option("--keys", o.keys, "size of the key space")->check(CLI::PositiveNumber);
  app.add_option("--cacert", o.tls.cacert, "verify the servers' certificates with this CA bundle");
  app.add_option("--cert", o.tls.cert, "client certificate (TLS)");
  app.add_option("--key", o.tls.key, "client certificate's key");
  CLI11_PARSE(app, argc, argv);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);  // as the daemon
  auto credentials =
      chainfire::tls::ClientChannelCredentials(o.tls, absl::StrContains(o.endpoints, "https://"));
  if (!credentials.ok()) {
    std::fprintf(stderr, "chainfire-bench: %s\n",
                 std::string(credentials.status().message()).c_str());
    return 2;
  }
  Bench bench(o, *credentials);
  std::printf("%s\n", bench.Run().c_str());
  return bench.succeeded() > 0 ? 0 : 1;  // nothing succeeded: the endpoints are not serving
}
