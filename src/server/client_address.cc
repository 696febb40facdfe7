#include "chainfire/server/client_address.h"

#include "absl/strings/match.h"
#include "chainfire/common/sockets.h"
#include "chainfire/gateway/json_gateway.h"

namespace chainfire::server {

void RecordHandedOverConnection(int fd, const std::string& address) {
  RecordHandedOverSocket(fd, address);
}

std::string ClientAddress(grpc::ServerContextBase* ctx) {
  std::string peer = ctx->peer();
  if (absl::StartsWith(peer, "fd:")) return HandedOverAddress(peer);
  // Not a socket of ours: the in-process channel (the JSON gateway).
  if (!absl::StartsWith(peer, "ipv4:") && !absl::StartsWith(peer, "ipv6:") &&
      !absl::StartsWith(peer, "unix:")) {
    const auto& md = ctx->client_metadata();
    auto it = md.find(gateway::kGatewayPeerMetadata);
    if (it != md.end()) return std::string(it->second.data(), it->second.size());
  }
  return peer;
}

}  // namespace chainfire::server
