// gRPC channel credentials from checked TLS material (tls_material.h), for the tools that dial a
// member once (chainfire-backup, chainfire-bench): gRPC's own TLS stack (TlsCredentials) with the
// material fixed for the channel's life. A running member's ports and peer channels use LiveTls
// (live_tls.h), which follows the files. TLS 1.2 is gRPC's minimum.
// Thread-safety: thread-safe.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "chainfire/tls/tls_material.h"
#include "grpcpp/security/credentials.h"

namespace chainfire::tls {

// Verifies the server's certificate against the material's CA bundle (none: the system's CAs) and
// its name against the address dialed, and presents the material's own certificate, if it has one
// (for servers that require one).
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentialsFor(const TlsMaterial& material);

// etcdctl's client TLS flags: --cacert, --cert, --key.
struct ClientTlsFlags {
  std::string cacert, cert, key;
};
// A tool's credentials: plaintext unless a flag is given or `https` (an https:// endpoint was
// named; without --cacert the system's CAs verify it). The files are checked first (errors name
// them).
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ClientChannelCredentials(
    const ClientTlsFlags& flags, bool https);

}  // namespace chainfire::tls
