// gRPC server credentials from checked TLS material (tls_material.h): gRPC's own TLS stack
// (TlsServerCredentials) serves the certificate; with client_cert_auth it requires and verifies
// a client certificate against the material's CA bundle. TLS 1.2 is gRPC's minimum.
// Thread-safety: thread-safe.
#pragma once

#include <memory>
#include <string>

#include "chainfire/tls/tls_material.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"

namespace chainfire::tls {

// `allowed_cn` (etcd's --peer-cert-allowed-cn; empty: any): with client_cert_auth, a client
// certificate whose subject CN differs is refused after the chain check (and logged).
std::shared_ptr<grpc::ServerCredentials> ServerCredentialsFor(const TlsMaterial& material,
                                                              bool client_cert_auth,
                                                              const std::string& allowed_cn = "");
// Credentials for dialing a TLS server (a peer): verifies its certificate against the
// material's CA bundle and its name against the address dialed, and presents the material's
// own certificate, if it has one (for servers that require one).
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentialsFor(const TlsMaterial& material);

}  // namespace chainfire::tls
