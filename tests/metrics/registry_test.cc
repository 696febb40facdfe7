// The metrics registry: exact text exposition (format 0.0.4) of counters, gauges, histograms,
// labels and callbacks, and counts that stay exact under concurrent writers.
#include "chainfire/metrics/registry.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace chainfire::metrics {
namespace {

TEST(Registry, RendersEveryKindInRegistrationOrder) {
  Registry r;
  r.AddCounter("etcd_mvcc_put_total", "Total number of puts seen by this member.")->Get()->Add(3);
  r.AddGauge("etcd_server_has_leader", "Whether or not a leader exists. 1 is existence.")
      ->Get()
      ->Set(1);
  auto* handled = r.AddCounter("grpc_server_handled_total", "Total RPCs completed.",
                               {"grpc_method", "grpc_code"});
  handled->With({"Range", "OK"})->Add(2);
  handled->With({"Put", "Unavailable"})->Add();
  auto* h = r.AddHistogram("etcd_disk_wal_fsync_duration_seconds", "fsync latency",
                           ExponentialBuckets(0.001, 2, 3));
  h->Get()->Observe(0.0005);
  h->Get()->Observe(0.003);
  h->Get()->Observe(1);
  r.AddCallback("etcd_server_id", "Server or member ID in hexadecimal format.", Type::kGauge,
                {"server_id"}, [] {
                  return Registry::Samples{{{"8e9e05c52164694d"}, 1}};
                });
  EXPECT_EQ(r.Render(),
            "# HELP etcd_mvcc_put_total Total number of puts seen by this member.\n"
            "# TYPE etcd_mvcc_put_total counter\n"
            "etcd_mvcc_put_total 3\n"
            "# HELP etcd_server_has_leader Whether or not a leader exists. 1 is existence.\n"
            "# TYPE etcd_server_has_leader gauge\n"
            "etcd_server_has_leader 1\n"
            "# HELP grpc_server_handled_total Total RPCs completed.\n"
            "# TYPE grpc_server_handled_total counter\n"
            "grpc_server_handled_total{grpc_method=\"Put\",grpc_code=\"Unavailable\"} 1\n"
            "grpc_server_handled_total{grpc_method=\"Range\",grpc_code=\"OK\"} 2\n"
            "# HELP etcd_disk_wal_fsync_duration_seconds fsync latency\n"
            "# TYPE etcd_disk_wal_fsync_duration_seconds histogram\n"
            "etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.001\"} 1\n"
            "etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.002\"} 1\n"
            "etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.004\"} 2\n"
            "etcd_disk_wal_fsync_duration_seconds_bucket{le=\"+Inf\"} 3\n"
            "etcd_disk_wal_fsync_duration_seconds_sum 1.0035\n"
            "etcd_disk_wal_fsync_duration_seconds_count 3\n"
            "# HELP etcd_server_id Server or member ID in hexadecimal format.\n"
            "# TYPE etcd_server_id gauge\n"
            "etcd_server_id{server_id=\"8e9e05c52164694d\"} 1\n");
}

TEST(Registry, EscapesLabelValuesAndHelpAndSpellsSpecialValues) {
  Registry r;
  r.AddGauge("g", "a \\ back\nslash", {"l"})->With({"q\"uote\\\n"})->Set(0.25);
  r.AddCallback("inf", "h", Type::kGauge, [] { return 1.0 / 0.0; });
  EXPECT_EQ(r.Render(),
            "# HELP g a \\\\ back\\nslash\n# TYPE g gauge\ng{l=\"q\\\"uote\\\\\\n\"} 0.25\n"
            "# HELP inf h\n# TYPE inf gauge\ninf +Inf\n");
}

TEST(Registry, BucketBoundsAreWrittenAsEtcdWritesThem) {
  Registry r;
  r.AddHistogram("rtt", "h", ExponentialBuckets(0.0001, 2, 3))->Get();
  const std::string text = r.Render();
  EXPECT_NE(text.find("le=\"0.0001\""), std::string::npos) << text;
  EXPECT_NE(text.find("le=\"0.0002\""), std::string::npos) << text;
  EXPECT_NE(text.find("le=\"0.0004\""), std::string::npos) << text;
}

TEST(Registry, ConcurrentWritersLoseNoCount) {
  Registry r;
  Counter* c = r.AddCounter("c", "h")->Get();
  Histogram* h = r.AddHistogram("h", "h", {1, 2})->Get();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100000; ++i) {
        c->Add();
        h->Observe(1.5);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c->value(), 400000u);
  EXPECT_EQ(h->count(), 400000u);
  EXPECT_DOUBLE_EQ(h->sum(), 600000.0);
  EXPECT_EQ(h->CumulativeCounts(), (std::vector<uint64_t>{0, 400000, 400000}));
}

}  // namespace
}  // namespace chainfire::metrics
