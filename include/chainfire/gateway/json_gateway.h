// JsonGateway: etcd 3.4's v3 JSON gateway (grpc-gateway) on the member's HTTP listener.
// `POST /v3/<path>` (and the /v3beta alias) carries one request of an etcd RPC as protobuf's
// proto3 JSON mapping (the .proto names as written); the gateway makes that call on the
// member's own gRPC server through an in-process channel, so auth, limits and errors are those
// of gRPC, and answers with the JSON of the response, grpc-gateway's error object, or for
// Watch, LeaseKeepAlive and Snapshot a chunked stream of `{"result":...}` lines.
// The `Authorization` header travels as the call's `authorization` metadata (etcd's swagger
// token field); the HTTP client's address as kGatewayPeerMetadata.
//
// Thread-safety: Handle may run on any thread (the HTTP loop's); calls complete on gRPC's
// threads; the destructor waits for the calls in flight (their Exchanges cancel them first).
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "chainfire/http/http_server.h"
#include "google/protobuf/message.h"
#include "grpcpp/channel.h"
#include "grpcpp/generic/generic_stub.h"

namespace chainfire::gateway {

// The metadata that carries the HTTP client's address to the services (trusted only on calls
// from this process: server/client_address.h).
inline constexpr char kGatewayPeerMetadata[] = "chainfire-gateway-peer";

// How a gateway path is called: once, as a stream of answers to one request (Snapshot,
// LeaseKeepAlive: the client half-closes after it), or as a Watch (the request side stays
// open: a watch lives until the HTTP client goes away or its watcher is compacted away).
enum class CallKind { kUnary, kStream, kWatch };

struct Route {
  std::string path;         // after the version prefix: "kv/range"
  std::string grpc_method;  // "/etcdserverpb.KV/Range"
  const google::protobuf::MethodDescriptor* method;
  CallKind kind;
};

// etcd 3.4.23's gateway paths (rpc.proto's google.api.http options), with their aliases.
const std::vector<Route>& Routes();
const Route* FindRoute(std::string_view path);

// grpc-gateway v1's mapping of a gRPC code to an HTTP status, and its reason phrase.
int HttpStatusFromGrpcCode(int code);
std::string HttpStatusText(int http_status);
// {"error":M,"message":M,"code":N}: a unary call's failure.
std::string UnaryErrorJson(int grpc_code, const std::string& message);
// {"error":{"grpc_code":N,"http_code":H,"message":M,"http_status":S}}: a stream's failure.
std::string StreamErrorJson(int grpc_code, const std::string& message);

// The request message of `route` from a JSON body (empty: {}); unknown fields are ignored,
// 64-bit integers read from numbers or strings, enums from names or numbers.
absl::StatusOr<std::unique_ptr<google::protobuf::Message>> ParseJsonRequest(const Route& route,
                                                                            std::string_view body);
// A Watch body may hold several requests (one JSON object after another).
absl::StatusOr<std::vector<std::unique_ptr<google::protobuf::Message>>> ParseJsonRequests(
    const Route& route, std::string_view body);
// grpc-gateway's output: .proto names, 64-bit integers as strings, zero values left out.
std::string ToJson(const google::protobuf::Message& message);

class JsonGateway {
 public:
  explicit JsonGateway(std::shared_ptr<grpc::Channel> channel);
  ~JsonGateway();

  // The prefix routes for HttpServer: "/v3/" and "/v3beta/".
  std::vector<std::pair<std::string, http::AsyncHandler>> HttpRoutes();
  void Handle(http::Request request, std::shared_ptr<http::Exchange> exchange);

  // Book-keeping of calls in flight (the destructor waits for them).
  void CallStarted();
  void CallEnded();

 private:
  grpc::GenericStub stub_;
  std::mutex mu_;
  std::condition_variable idle_;
  int in_flight_ = 0;  // guarded by mu_
};

}  // namespace chainfire::gateway
