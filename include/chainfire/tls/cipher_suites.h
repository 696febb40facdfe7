// etcd's --cipher-suites: Go's names of TLS 1.2 cipher suites, mapped onto the OpenSSL names
// gRPC takes. gRPC 1.51 has no per-credential cipher setter, only the process-wide
// GRPC_SSL_CIPHER_SUITES variable, read when gRPC initializes: so the list applies to every TLS
// port and channel of the process, and must be set before any gRPC object exists. TLS 1.3
// suites are not configurable (as in etcd, whose list applies to TLS 1.2 only).
// Thread-safety: call before any other thread runs.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace chainfire::tls {

// "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,..." -> "ECDHE-RSA-AES128-GCM-SHA256:..."; an unknown
// name is InvalidArgument naming it and the known ones.
absl::StatusOr<std::string> OpenSslCipherList(const std::string& etcd_names);
// Sets GRPC_SSL_CIPHER_SUITES from etcd's names (empty: gRPC's defaults stay).
absl::Status ApplyCipherSuites(const std::string& etcd_names);

}  // namespace chainfire::tls
