#include "chainfire/common/sockets.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <mutex>
#include <unordered_map>

namespace chainfire {

AddrInfoList ResolveHostPort(const std::string& host_port, bool passive, std::string* error) {
  const size_t colon = host_port.rfind(':');
  int port = -1;
  if (colon != std::string::npos) {
    const char* first = host_port.data() + colon + 1;
    const char* last = host_port.data() + host_port.size();
    auto [end, ec] = std::from_chars(first, last, port);
    if (ec != std::errc() || end != last || first == last) port = -1;
  }
  if (port < 0 || port > 65535) {
    *error = "not a host:port: " + host_port;
    return nullptr;
  }
  std::string host = host_port.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (passive) hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.empty() ? nullptr : host.c_str(), std::to_string(port).c_str(), &hints,
                  &found) != 0 ||
      found == nullptr) {
    *error = "unknown host";
    return nullptr;
  }
  return AddrInfoList(found);
}

std::string PeerName(const sockaddr* addr, int len) {
  char host[INET6_ADDRSTRLEN] = {};
  if (addr->sa_family == AF_INET && len >= static_cast<int>(sizeof(sockaddr_in))) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(addr);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    return std::string("ipv4:") + host + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (addr->sa_family == AF_INET6 && len >= static_cast<int>(sizeof(sockaddr_in6))) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(addr);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    return std::string("ipv6:[") + host + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  return "unknown";
}

std::string SocketPeerName(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "unknown";
  return PeerName(reinterpret_cast<const sockaddr*>(&addr), static_cast<int>(len));
}

namespace {

// Socket number -> address. A number is reused only after its socket closed, and then the new
// handover records the new address first; so the entry for a live connection is always right.
std::mutex& HandedOverMu() {
  static auto* mu = new std::mutex;
  return *mu;
}
std::unordered_map<int, std::string>& HandedOver() {
  static auto* map = new std::unordered_map<int, std::string>;
  return *map;
}

}  // namespace

void RecordHandedOverSocket(int fd, const std::string& address) {
  std::lock_guard lock(HandedOverMu());
  HandedOver()[fd] = address;
}

std::string HandedOverAddress(const std::string& grpc_peer) {
  if (grpc_peer.rfind("fd:", 0) != 0) return grpc_peer;
  int fd = -1;
  const char* first = grpc_peer.data() + 3;
  const char* last = grpc_peer.data() + grpc_peer.size();
  if (auto [end, ec] = std::from_chars(first, last, fd); ec != std::errc() || end != last) {
    return grpc_peer;
  }
  std::lock_guard lock(HandedOverMu());
  auto it = HandedOver().find(fd);
  return it != HandedOver().end() ? it->second : grpc_peer;
}

}  // namespace chainfire
