// Small socket helpers shared by the member's listeners and dialers.
// Thread-safety: plain functions (getaddrinfo may block on DNS).
#pragma once

#include <netdb.h>
#include <sys/socket.h>

#include <memory>
#include <string>

namespace chainfire {

struct AddrInfoDeleter {
  void operator()(addrinfo* a) const { freeaddrinfo(a); }
};
using AddrInfoList = std::unique_ptr<addrinfo, AddrInfoDeleter>;

// Resolves "host:port" ("[v6]:port" too; an empty host with `passive`: every address) to TCP
// addresses. nullptr with `*error` set ("not a host:port: x", "unknown host") on failure.
AddrInfoList ResolveHostPort(const std::string& host_port, bool passive, std::string* error);

// A peer address as gRPC writes it: "ipv4:127.0.0.1:5000", "ipv6:[::1]:5000", else "unknown".
std::string PeerName(const sockaddr* addr, int len);
// PeerName of a connected socket's remote end.
std::string SocketPeerName(int fd);

// gRPC names a connection handed to it as a socket ("fd:12"), not by its address: a listener
// that hands socket `fd`, connected from `address`, over records it here, and
// HandedOverAddress turns "fd:12" back into that address (any other peer string is returned
// as it is). Thread-safe.
void RecordHandedOverSocket(int fd, const std::string& address);
std::string HandedOverAddress(const std::string& grpc_peer);

}  // namespace chainfire
