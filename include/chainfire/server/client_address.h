// Where a client call comes from, for logs and per-host limits. gRPC names the peer of a
// connection it accepted itself ("ipv4:127.0.0.1:5000"), but not of one handed over from the
// shared client port ("fd:12": the address is recorded at the handover) nor of a call from the
// JSON gateway (in-process: the gateway sends the HTTP client's address in metadata, which is
// believed only on in-process calls, so a remote client cannot claim another address).
// Thread-safety: all functions are safe from any thread.
#pragma once

#include <string>

#include "grpcpp/server_context.h"

namespace chainfire::server {

// The shared client port hands socket `fd`, connected from `address`, to gRPC.
void RecordHandedOverConnection(int fd, const std::string& address);
// The client's address in gRPC's form, or gRPC's peer string when nothing better is known.
std::string ClientAddress(grpc::ServerContextBase* ctx);

}  // namespace chainfire::server
