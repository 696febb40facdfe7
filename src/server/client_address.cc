#include "chainfire/server/client_address.h"

#include <mutex>
#include <unordered_map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "chainfire/gateway/json_gateway.h"

namespace chainfire::server {
namespace {

// Socket number -> address. A number is reused only after its socket closed, and then the new
// handover records the new address first; so the entry for a live connection is always right.
std::mutex& Mu() {
  static std::mutex* mu = new std::mutex;
  return *mu;
}
std::unordered_map<int, std::string>& HandedOver() {
  static auto* map = new std::unordered_map<int, std::string>;
  return *map;
}

}  // namespace

void RecordHandedOverConnection(int fd, const std::string& address) {
  std::lock_guard lock(Mu());
  HandedOver()[fd] = address;
}

std::string ClientAddress(grpc::ServerContextBase* ctx) {
  std::string peer = ctx->peer();
  if (absl::StartsWith(peer, "fd:")) {
    int fd = -1;
    if (absl::SimpleAtoi(absl::string_view(peer).substr(3), &fd)) {
      std::lock_guard lock(Mu());
      auto it = HandedOver().find(fd);
      if (it != HandedOver().end()) return it->second;
    }
    return peer;
  }
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
