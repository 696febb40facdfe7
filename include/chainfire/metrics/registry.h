// Prometheus metrics: counters, gauges and histograms (optionally with labels) in a registry that
// renders the text exposition format 0.0.4. Debian 12 has no prometheus-cpp; this is the small
// part of it ChainFire needs.
//
// The write path costs one or a few relaxed atomic operations and takes no lock: Counter::Add,
// Gauge::Set, Histogram::Observe. A labelled child is found (or made) under a lock once; callers
// on hot paths keep the pointer it returns, which lives as long as the registry. Values that are
// already kept elsewhere (a member's term, the database size, process statistics) are read at
// scrape time by callback metrics instead of being copied on every change.
//
// Thread-safety: every method of every class here may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace chainfire::metrics {

// A monotonically increasing count (of events or bytes).
class Counter {
 public:
  void Add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down.
class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double d);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Observations counted into fixed buckets (upper bounds, ascending), with their count and sum.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  // Cumulative counts per bound (then +Inf), the count and the sum, as of one moment per field.
  std::vector<uint64_t> CumulativeCounts() const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // one per bound, then +Inf
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

// etcd's buckets: disk durations (etcd_disk_*: 1 ms doubling to 8 s) and peer round trips
// (etcd_network_peer_round_trip_time_seconds: 0.1 ms doubling, 15 buckets).
std::vector<double> ExponentialBuckets(double start, double factor, int count);

enum class Type { kCounter, kGauge, kHistogram };

// A metric name with its help, type and label names; its children are the label values seen.
template <typename M>
class Family {
 public:
  // The child for these label values (in the order of the family's label names), made on first
  // use. The pointer stays valid as long as the registry.
  M* With(const std::vector<std::string>& values);
  // The child of a family without labels.
  M* Get() { return With({}); }

 private:
  friend class Registry;
  Family(std::vector<std::string> label_names, std::function<std::unique_ptr<M>()> make)
      : label_names_(std::move(label_names)), make_(std::move(make)) {}
  const std::vector<std::string> label_names_;
  const std::function<std::unique_ptr<M>()> make_;
  std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<M>> children_;  // guarded by mu_
};

class Registry {
 public:
  Family<Counter>* AddCounter(const std::string& name, const std::string& help,
                              std::vector<std::string> labels = {});
  Family<Gauge>* AddGauge(const std::string& name, const std::string& help,
                          std::vector<std::string> labels = {});
  Family<Histogram>* AddHistogram(const std::string& name, const std::string& help,
                                  std::vector<double> bounds, std::vector<std::string> labels = {});
  // A metric read when scraped: `read` returns its samples as (label values, value) pairs.
  using Samples = std::vector<std::pair<std::vector<std::string>, double>>;
  void AddCallback(const std::string& name, const std::string& help, Type type,
                   std::vector<std::string> labels, std::function<Samples()> read);
  // Shorthand for a callback metric without labels.
  void AddCallback(const std::string& name, const std::string& help, Type type,
                   std::function<double()> read);

  // Every metric in registration order, in the text exposition format 0.0.4.
  std::string Render() const;

 private:
  struct Entry {
    std::string name, help;
    Type type;
    std::vector<std::string> labels;
    std::unique_ptr<Family<Counter>> counters;
    std::unique_ptr<Family<Gauge>> gauges;
    std::unique_ptr<Family<Histogram>> histograms;
    std::function<Samples()> callback;
  };
  Entry* Add(const std::string& name, const std::string& help, Type type,
             std::vector<std::string> labels);

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Entry>> entries_;  // guarded by mu_
};

// The process-wide registry the daemon serves on /metrics.
Registry& Default();

// Whether timings are taken (the daemon's --metrics off turns them and the gRPC counters off, to
// measure what metrics cost; counts kept elsewhere are still served). On by default.
void SetTimingEnabled(bool on);
bool TimingEnabled();

template <typename M>
M* Family<M>::With(const std::vector<std::string>& values) {
  std::lock_guard<std::mutex> l(mu_);
  auto& child = children_[values];
  if (!child) child = make_();
  return child.get();
}

}  // namespace chainfire::metrics
