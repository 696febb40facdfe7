#include "chainfire/metrics/registry.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace chainfire::metrics {
namespace {

// A sample value as Prometheus writes it: integers without a fraction, others in the shortest
// form that reads back exactly (bucket bounds as etcd's: "0.001", "0.0002"), +Inf/-Inf/NaN.
std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof(buf), "%.0f", v);
    return buf;
  }
  const auto r = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::general);
  return std::string(buf, r.ptr);
}

// A label value escaped as the exposition format requires (\\, \" and \n).
std::string EscapeLabel(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// HELP text escaped (\\ and \n).
std::string EscapeHelp(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// {a="x",b="y"} (with `extra` appended, e.g. le="0.5"); empty when there are no labels.
std::string LabelSet(const std::vector<std::string>& names, const std::vector<std::string>& values,
                     const std::string& extra = "") {
  std::string out;
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    out += (out.empty() ? "" : ",") + names[i] + "=\"" + EscapeLabel(values[i]) + "\"";
  }
  if (!extra.empty()) out += (out.empty() ? "" : ",") + extra;
  return out.empty() ? "" : "{" + out + "}";
}

const char* TypeName(Type t) {
  switch (t) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

void AddDouble(std::atomic<double>* a, double d) {
  double old = a->load(std::memory_order_relaxed);
  while (!a->compare_exchange_weak(old, old + d, std::memory_order_relaxed)) {
  }
}

}  // namespace

void Gauge::Add(double d) { AddDouble(&value_, d); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(double v) {
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  AddDouble(&sum_, v);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    out[i] = running;
  }
  return out;
}

double Histogram::sum() const { return sum_.load(std::memory_order_relaxed); }

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> out;
  for (int i = 0; i < count; ++i, start *= factor) out.push_back(start);
  return out;
}

Registry::Entry* Registry::Add(const std::string& name, const std::string& help, Type type,
                               std::vector<std::string> labels) {
  auto e = std::make_unique<Entry>();
  e->name = name;
  e->help = help;
  e->type = type;
  e->labels = std::move(labels);
  std::lock_guard<std::mutex> l(mu_);
  entries_.push_back(std::move(e));
  return entries_.back().get();
}

Family<Counter>* Registry::AddCounter(const std::string& name, const std::string& help,
                                      std::vector<std::string> labels) {
  Entry* e = Add(name, help, Type::kCounter, labels);
  e->counters.reset(
      new Family<Counter>(std::move(labels), [] { return std::make_unique<Counter>(); }));
  return e->counters.get();
}

Family<Gauge>* Registry::AddGauge(const std::string& name, const std::string& help,
                                  std::vector<std::string> labels) {
  Entry* e = Add(name, help, Type::kGauge, labels);
  e->gauges.reset(new Family<Gauge>(std::move(labels), [] { return std::make_unique<Gauge>(); }));
  return e->gauges.get();
}

Family<Histogram>* Registry::AddHistogram(const std::string& name, const std::string& help,
                                          std::vector<double> bounds,
                                          std::vector<std::string> labels) {
  Entry* e = Add(name, help, Type::kHistogram, labels);
  e->histograms.reset(new Family<Histogram>(
      std::move(labels), [bounds] { return std::make_unique<Histogram>(bounds); }));
  return e->histograms.get();
}

void Registry::AddCallback(const std::string& name, const std::string& help, Type type,
                           std::vector<std::string> labels, std::function<Samples()> read) {
  Add(name, help, type, std::move(labels))->callback = std::move(read);
}

void Registry::AddCallback(const std::string& name, const std::string& help, Type type,
                           std::function<double()> read) {
  AddCallback(name, help, type, {}, [read = std::move(read)] { return Samples{{{}, read()}}; });
}

std::string Registry::Render() const {
  std::string out;
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& e : entries_) {
    std::string samples;
    if (e->callback) {
      for (const auto& [values, v] : e->callback()) {
        samples += e->name + LabelSet(e->labels, values) + " " + FormatValue(v) + "\n";
      }
    } else if (e->counters) {
      std::lock_guard<std::mutex> fl(e->counters->mu_);
      for (const auto& [values, c] : e->counters->children_) {
        samples += e->name + LabelSet(e->labels, values) + " " +
                   FormatValue(static_cast<double>(c->value())) + "\n";
      }
    } else if (e->gauges) {
      std::lock_guard<std::mutex> fl(e->gauges->mu_);
      for (const auto& [values, g] : e->gauges->children_) {
        samples += e->name + LabelSet(e->labels, values) + " " + FormatValue(g->value()) + "\n";
      }
    } else if (e->histograms) {
      std::lock_guard<std::mutex> fl(e->histograms->mu_);
      for (const auto& [values, h] : e->histograms->children_) {
        const std::vector<uint64_t> counts = h->CumulativeCounts();
        for (size_t i = 0; i < counts.size(); ++i) {
          const std::string le =
              "le=\"" + (i < h->bounds().size() ? FormatValue(h->bounds()[i]) : "+Inf") + "\"";
          samples += e->name + "_bucket" + LabelSet(e->labels, values, le) + " " +
                     FormatValue(static_cast<double>(counts[i])) + "\n";
        }
        samples +=
            e->name + "_sum" + LabelSet(e->labels, values) + " " + FormatValue(h->sum()) + "\n";
        // The count is the +Inf bucket's, so the two always agree within one scrape.
        samples += e->name + "_count" + LabelSet(e->labels, values) + " " +
                   FormatValue(static_cast<double>(counts.back())) + "\n";
      }
    }
    out += "# HELP " + e->name + " " + EscapeHelp(e->help) + "\n";
    out += "# TYPE " + e->name + " " + TypeName(e->type) + "\n";
    out += samples;
  }
  return out;
}

namespace {
std::atomic<bool> timing_enabled{true};
}  // namespace

void SetTimingEnabled(bool on) { timing_enabled.store(on, std::memory_order_relaxed); }
bool TimingEnabled() { return timing_enabled.load(std::memory_order_relaxed); }

Registry& Default() {
  static Registry* registry = new Registry();
  return *registry;
}

}  // namespace chainfire::metrics
