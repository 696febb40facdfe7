// gRPC server credentials from checked TLS material (tls_material.h): gRPC's own TLS stack
// (TlsServerCredentials) serves the certificate; with client_cert_auth it requires and verifies
// a client certificate against the material's CA bundle. TLS 1.2 is gRPC's minimum.
// Thread-safety: thread-safe.
#pragma once

#include <memory>

#include "chainfire/tls/tls_material.h"
#include "grpcpp/security/server_credentials.h"

namespace chainfire::tls {

std::shared_ptr<grpc::ServerCredentials> ServerCredentialsFor(const TlsMaterial& material,
                                                              bool client_cert_auth);

}  // namespace chainfire::tls
