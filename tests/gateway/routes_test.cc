// The gateway's pure parts on fixtures: etcd 3.4.23's paths, grpc-gateway v1's status mapping
// and error objects (texts recorded from etcd 3.4.23), and the JSON mapping rules.
#include <gtest/gtest.h>

#include "chainfire/gateway/json_gateway.h"
#include "etcd/rpc.pb.h"

namespace chainfire::gateway {
namespace {

TEST(GatewayRoutes, ServeEtcdsPathsWithTheirAliasesAndNothingElse) {
  EXPECT_EQ(FindRoute("kv/range")->grpc_method, "/etcdserverpb.KV/Range");
  EXPECT_EQ(FindRoute("kv/lease/revoke")->grpc_method, "/etcdserverpb.Lease/LeaseRevoke");
  EXPECT_EQ(FindRoute("lease/keepalive")->kind, CallKind::kStream);
  EXPECT_EQ(FindRoute("watch")->kind, CallKind::kWatch);
  EXPECT_EQ(FindRoute("maintenance/snapshot")->kind, CallKind::kStream);
  // etcd 3.4 maps Hash and HashKV to the same path; its gateway serves Hash.
  EXPECT_EQ(FindRoute("maintenance/hash")->grpc_method, "/etcdserverpb.Maintenance/Hash");
  EXPECT_EQ(FindRoute("maintenance/transfer-leadership")->grpc_method,
            "/etcdserverpb.Maintenance/MoveLeader");
  EXPECT_EQ(FindRoute("kv/nothing"), nullptr);
  EXPECT_EQ(FindRoute(""), nullptr);
  for (const Route& r : Routes()) {
    ASSERT_NE(r.method, nullptr) << r.path;  // every route names a method of our rpc.proto
    EXPECT_EQ(r.grpc_method, "/" + r.method->service()->full_name() + "/" + r.method->name());
  }
  EXPECT_EQ(Routes().size(), 41u);
}

TEST(GatewayErrors, MapCodesAsGrpcGatewayV1AndWriteEtcdsErrorObjects) {
  EXPECT_EQ(HttpStatusFromGrpcCode(3), 400);
  EXPECT_EQ(HttpStatusFromGrpcCode(5), 404);
  EXPECT_EQ(HttpStatusFromGrpcCode(9), 412);
  EXPECT_EQ(HttpStatusFromGrpcCode(11), 400);
  EXPECT_EQ(HttpStatusFromGrpcCode(14), 503);
  EXPECT_EQ(HttpStatusFromGrpcCode(16), 401);
  EXPECT_EQ(HttpStatusFromGrpcCode(8), 429);
  // Recorded from etcd 3.4.23: POST /v3/kv/put with a lease that does not exist.
  EXPECT_EQ(UnaryErrorJson(5, "etcdserver: requested lease not found"),
            "{\"error\":\"etcdserver: requested lease not found\",\"message\":\"etcdserver: "
            "requested lease not found\",\"code\":5}");
  EXPECT_EQ(StreamErrorJson(16, "etcdserver: invalid auth token"),
            "{\"error\":{\"grpc_code\":16,\"http_code\":401,\"message\":\"etcdserver: invalid "
            "auth token\",\"http_status\":\"Unauthorized\"}}");
  // Quotes and control characters in a message stay valid JSON.
  EXPECT_EQ(UnaryErrorJson(3, "a \"b\"\n"),
            "{\"error\":\"a \\\"b\\\"\\n\",\"message\":\"a \\\"b\\\"\\n\",\"code\":3}");
}

TEST(GatewayJson, ReadsEtcdsRequestFormsExactly) {
  const Route& put = *FindRoute("kv/put");
  auto m = ParseJsonRequest(put, R"({"key":"YQ==","value":"Yg==","lease":"7587869999999999999"})");
  ASSERT_TRUE(m.ok()) << m.status();
  const auto& p = static_cast<const etcdserverpb::PutRequest&>(**m);
  EXPECT_EQ(p.key(), "a");
  EXPECT_EQ(p.value(), "b");
  EXPECT_EQ(p.lease(), 7587869999999999999);  // above 2^53: exact
  // As a JSON number too, and unknown fields ignored.
  m = ParseJsonRequest(put, R"({"key":"YQ==","lease":7587869999999999999,"future_field":{"x":1}})");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(static_cast<const etcdserverpb::PutRequest&>(**m).lease(), 7587869999999999999);
  // Empty bodies are {}.
  m = ParseJsonRequest(put, " \r\n");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)->ByteSizeLong(), 0u);
  // Enums by name or number; an unknown name is refused (Go's decoder refuses it too).
  const Route& range = *FindRoute("kv/range");
  m = ParseJsonRequest(range, R"({"key":"YQ==","sort_order":"DESCEND","sort_target":3})");
  ASSERT_TRUE(m.ok()) << m.status();
  const auto& r = static_cast<const etcdserverpb::RangeRequest&>(**m);
  EXPECT_EQ(r.sort_order(), etcdserverpb::RangeRequest::DESCEND);
  EXPECT_EQ(r.sort_target(), etcdserverpb::RangeRequest::MOD);
  EXPECT_FALSE(ParseJsonRequest(range, R"({"key":"YQ==","sort_order":"SIDEWAYS"})").ok());
  // camelCase names are read as well as the .proto names.
  m = ParseJsonRequest(range, R"({"key":"YQ==","rangeEnd":"Yg=="})");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(static_cast<const etcdserverpb::RangeRequest&>(**m).range_end(), "b");
  // Wrong types and broken JSON: InvalidArgument.
  for (const char* bad : {R"({"key":5})", R"({"key":"YQ==","limit":"many"})", "{", "[1]",
                          R"({"key":"!!not base64"})"}) {
    auto refused = ParseJsonRequest(range, bad);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(GatewayJson, SplitsAWatchBodyIntoItsRequests) {
  const Route& watch = *FindRoute("watch");
  auto all = ParseJsonRequests(
      watch, "{\"create_request\":{\"key\":\"YQ==\"}}\n {\"cancel_request\":{\"watch_id\":\"7\"}}");
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ(static_cast<const etcdserverpb::WatchRequest&>(*(*all)[0]).create_request().key(), "a");
  EXPECT_EQ(static_cast<const etcdserverpb::WatchRequest&>(*(*all)[1]).cancel_request().watch_id(),
            7);
  // Braces inside strings do not split a request.
  all = ParseJsonRequests(watch, R"({"create_request":{"key":"YQ=="},"x":"}{"})");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 1u);
  EXPECT_TRUE(ParseJsonRequests(watch, "")->empty());
  EXPECT_FALSE(ParseJsonRequests(watch, "{\"create_request\":").ok());
}

TEST(GatewayJson, WritesProtoNamesIntegersAsStringsAndLeavesZerosOut) {
  etcdserverpb::TxnResponse txn;
  txn.mutable_header()->set_revision(5);
  txn.mutable_header()->set_cluster_id(18446744073709551615u);
  txn.set_succeeded(false);  // Patroni reads "succeeded" present as success: must be absent
  EXPECT_EQ(ToJson(txn), R"({"header":{"cluster_id":"18446744073709551615","revision":"5"}})");
  etcdserverpb::LeaseTimeToLiveResponse ttl;
  ttl.set_id(1);
  ttl.set_ttl(0);  // Patroni reads "TTL":"0" as a live lease: must be absent
  ttl.set_grantedttl(10);
  EXPECT_EQ(ToJson(ttl), R"({"ID":"1","grantedTTL":"10"})");
  etcdserverpb::RangeResponse range;
  auto* kv = range.add_kvs();
  kv->set_key("a");
  kv->set_value(std::string("\0\xff", 2));
  kv->set_create_revision(2);
  EXPECT_EQ(ToJson(range), R"({"kvs":[{"key":"YQ==","create_revision":"2","value":"AP8="}]})");
  etcdserverpb::WatchResponse canceled;
  canceled.set_canceled(true);
  canceled.set_compact_revision(3);
  EXPECT_EQ(ToJson(canceled), R"({"canceled":true,"compact_revision":"3"})");
}

}  // namespace
}  // namespace chainfire::gateway
