// The gateway's pure parts: etcd 3.4.23's paths, grpc-gateway v1's status mapping and error
// objects, and the JSON mapping (protobuf's own JsonStringToMessage / MessageToJsonString).
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "chainfire/gateway/json_gateway.h"
#include "etcd/rpc.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"

namespace chainfire::gateway {
namespace {

Route Make(std::string path, const char* service, const char* method, CallKind kind) {
  const google::protobuf::ServiceDescriptor* s =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          absl::StrCat("etcdserverpb.", service));
  const google::protobuf::MethodDescriptor* m = s ? s->FindMethodByName(method) : nullptr;
  return Route{std::move(path), absl::StrCat("/etcdserverpb.", service, "/", method), m, kind};
}

std::vector<Route> BuildRoutes() {
  etcdserverpb::RangeRequest link;  // makes sure rpc.proto's descriptors are in the pool
  (void)link;
  constexpr CallKind U = CallKind::kUnary;
  std::vector<Route> r = {
      Make("kv/range", "KV", "Range", U),
      Make("kv/put", "KV", "Put", U),
      Make("kv/deleterange", "KV", "DeleteRange", U),
      Make("kv/txn", "KV", "Txn", U),
      Make("kv/compaction", "KV", "Compact", U),
      Make("watch", "Watch", "Watch", CallKind::kWatch),
      Make("lease/grant", "Lease", "LeaseGrant", U),
      Make("lease/revoke", "Lease", "LeaseRevoke", U),
      Make("kv/lease/revoke", "Lease", "LeaseRevoke", U),
      Make("lease/keepalive", "Lease", "LeaseKeepAlive", CallKind::kStream),
      Make("lease/timetolive", "Lease", "LeaseTimeToLive", U),
      Make("kv/lease/timetolive", "Lease", "LeaseTimeToLive", U),
      Make("lease/leases", "Lease", "LeaseLeases", U),
      Make("kv/lease/leases", "Lease", "LeaseLeases", U),
      Make("cluster/member/add", "Cluster", "MemberAdd", U),
      Make("cluster/member/remove", "Cluster", "MemberRemove", U),
      Make("cluster/member/update", "Cluster", "MemberUpdate", U),
      Make("cluster/member/list", "Cluster", "MemberList", U),
      Make("cluster/member/promote", "Cluster", "MemberPromote", U),
      Make("maintenance/alarm", "Maintenance", "Alarm", U),
      Make("maintenance/status", "Maintenance", "Status", U),
      Make("maintenance/defragment", "Maintenance", "Defragment", U),
      // Hash and HashKV share this path in etcd 3.4's rpc.proto; its gateway serves Hash.
      Make("maintenance/hash", "Maintenance", "Hash", U),
      Make("maintenance/snapshot", "Maintenance", "Snapshot", CallKind::kStream),
      Make("maintenance/transfer-leadership", "Maintenance", "MoveLeader", U),
      Make("auth/enable", "Auth", "AuthEnable", U),
      Make("auth/disable", "Auth", "AuthDisable", U),
      Make("auth/authenticate", "Auth", "Authenticate", U),
      Make("auth/user/add", "Auth", "UserAdd", U),
      Make("auth/user/get", "Auth", "UserGet", U),
      Make("auth/user/list", "Auth", "UserList", U),
      Make("auth/user/delete", "Auth", "UserDelete", U),
      Make("auth/user/changepw", "Auth", "UserChangePassword", U),
      Make("auth/user/grant", "Auth", "UserGrantRole", U),
      Make("auth/user/revoke", "Auth", "UserRevokeRole", U),
      Make("auth/role/add", "Auth", "RoleAdd", U),
      Make("auth/role/get", "Auth", "RoleGet", U),
      Make("auth/role/list", "Auth", "RoleList", U),
      Make("auth/role/delete", "Auth", "RoleDelete", U),
      Make("auth/role/grant", "Auth", "RoleGrantPermission", U),
      Make("auth/role/revoke", "Auth", "RoleRevokePermission", U),
  };
  return r;
}

}  // namespace

const std::vector<Route>& Routes() {
  static const std::vector<Route>* routes = new std::vector<Route>(BuildRoutes());
  return *routes;
}

const Route* FindRoute(std::string_view path) {
  for (const Route& r : Routes()) {
    if (r.path == path && r.method != nullptr) return &r;
  }
  return nullptr;
}

int HttpStatusFromGrpcCode(int code) {
  switch (code) {
    case 0:  // OK
      return 200;
    case 1:  // CANCELLED
      return 408;
    case 2:  // UNKNOWN
      return 500;
    case 3:  // INVALID_ARGUMENT
      return 400;
    case 4:  // DEADLINE_EXCEEDED
      return 504;
    case 5:  // NOT_FOUND
      return 404;
    case 6:  // ALREADY_EXISTS
      return 409;
    case 7:  // PERMISSION_DENIED
      return 403;
    case 8:  // RESOURCE_EXHAUSTED
      return 429;
    case 9:  // FAILED_PRECONDITION
      return 412;
    case 10:  // ABORTED
      return 409;
    case 11:  // OUT_OF_RANGE
      return 400;
    case 12:  // UNIMPLEMENTED
      return 501;
    case 13:  // INTERNAL
      return 500;
    case 14:  // UNAVAILABLE
      return 503;
    case 15:  // DATA_LOSS
      return 500;
    case 16:  // UNAUTHENTICATED
      return 401;
    default:
      return 500;
  }
}

std::string HttpStatusText(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 412:
      return "Precondition Failed";
    case 429:
      return "Too Many Requests";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Internal Server Error";
  }
}

std::string UnaryErrorJson(int grpc_code, const std::string& message) {
  nlohmann::ordered_json body;
  body["error"] = message;
  body["message"] = message;
  body["code"] = grpc_code;
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string StreamErrorJson(int grpc_code, const std::string& message) {
  const int http = HttpStatusFromGrpcCode(grpc_code);
  nlohmann::ordered_json error;
  if (grpc_code != 0) error["grpc_code"] = grpc_code;
  error["http_code"] = http;
  if (!message.empty()) error["message"] = message;
  error["http_status"] = HttpStatusText(http);
  nlohmann::ordered_json body;
  body["error"] = error;
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

absl::StatusOr<std::unique_ptr<google::protobuf::Message>> ParseJsonRequest(const Route& route,
                                                                            std::string_view body) {
  const google::protobuf::Message* prototype =
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(
          route.method->input_type());
  std::unique_ptr<google::protobuf::Message> message(prototype->New());
  const size_t first = body.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return message;  // an empty body is {}
  const google::protobuf::StringPiece text(body.data(), body.size());
  // Strict first, so an unknown enum name is refused (as Go's decoder does); unknown fields
  // are ignored (as the issue and clients of newer etcd versions need).
  auto parsed = google::protobuf::util::JsonStringToMessage(text, message.get());
  if (!parsed.ok() &&
      std::string(parsed.message()).find("Cannot find field") != std::string::npos) {
    message->Clear();
    google::protobuf::util::JsonParseOptions lenient;
    lenient.ignore_unknown_fields = true;
    parsed = google::protobuf::util::JsonStringToMessage(text, message.get(), lenient);
  }
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(std::string(parsed.message()));
  }
  return message;
}

absl::StatusOr<std::vector<std::unique_ptr<google::protobuf::Message>>> ParseJsonRequests(
    const Route& route, std::string_view body) {
  std::vector<std::unique_ptr<google::protobuf::Message>> out;
  // nlohmann's stream reader stops right after one JSON value: that finds where each request
  // ends; protobuf then maps the request's own text.
  std::istringstream in{std::string(body)};
  while (true) {
    in >> std::ws;
    if (in.peek() == std::char_traits<char>::eof()) break;
    const std::streamoff start = in.tellg();
    try {
      nlohmann::json value;
      in >> value;
    } catch (const nlohmann::json::exception& e) {
      return absl::InvalidArgumentError(e.what());
    }
    in.clear();
    std::streamoff end = in.tellg();
    if (end < 0) end = static_cast<std::streamoff>(body.size());
    auto one = ParseJsonRequest(route, body.substr(start, end - start));
    if (!one.ok()) return one.status();
    out.push_back(std::move(*one));
  }
  return out;
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

}  // namespace chainfire::gateway
