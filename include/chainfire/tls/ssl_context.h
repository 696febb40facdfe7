// An OpenSSL server context from checked TLS material (tls_material.h), for the listeners gRPC
// does not serve: the HTTP metrics listener (and, later, the JSON gateway). TLS 1.2 at least;
// the material's certificate chain and key; the cipher list of --cipher-suites (the same
// GRPC_SSL_CIPHER_SUITES value gRPC uses); with client_cert_auth, a client certificate is
// required and verified against the material's CA bundle and, when it has one, its CRL.
// Thread-safety: building is thread-safe; a context is shared read-only by the connections.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "chainfire/tls/tls_material.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace chainfire::tls {

absl::StatusOr<std::shared_ptr<SSL_CTX>> ServerSslContext(const TlsMaterial& material,
                                                          bool client_cert_auth);

}  // namespace chainfire::tls
