// TLS material: the certificate, key, trusted-CA bundle and CRL a member serves and dials with,
// read from files (etcd's --cert-file / --key-file / --trusted-ca-file / --client-crl-file and
// their --peer-* forms). This module is the one place that reads and checks them; the gRPC
// credentials are built on it (grpc_credentials.h, live_tls.h; docs/security.md).
//
// LoadTlsMaterial reads and checks a set of files (certificate and key both given, or neither
// for trust-only material: a client that presents no certificate): the certificate file holds a
// certificate (its chain may follow), the key matches it, the CA file holds one or more
// certificates (a bundle: several CAs during a rotation), the CRL (optional) parses and is
// signed by a CA of the bundle. Every error names the file and the reason.
//
// TlsMaterialSource keeps the last good material and re-reads the files on Refresh(): a new set
// is validated first and only then swapped in; a half-written, unreadable or mismatched file
// leaves the last good material in place and Refresh() says why.
// Thread-safety: LoadTlsMaterial is thread-safe; TlsMaterialSource's methods may be called from
// any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace chainfire::tls {

struct TlsFiles {
  std::string cert_file;        // PEM: the certificate, then its chain (optional)
  std::string key_file;         // PEM: the private key of that certificate
  std::string trusted_ca_file;  // PEM: one or more CA certificates (empty: none)
  std::string crl_file;         // PEM: a CRL (empty: none)
};

struct TlsMaterial {
  std::string cert_pem, key_pem, ca_pem, crl_pem;  // the files' bytes as read
  std::string subject_cn;                          // the certificate's subject common name
  std::vector<std::string> ca_subjects;            // one line per CA in the bundle
  std::vector<std::string> revoked;  // the CRL's entries, as RevocationId() forms them
};

absl::StatusOr<TlsMaterial> LoadTlsMaterial(const TlsFiles& files);

// OK when the PEM certificate `peer_cert_pem` is not on the material's CRL; otherwise
// PERMISSION_DENIED naming its subject and serial. A certificate that does not parse is refused.
absl::Status CheckNotRevoked(const TlsMaterial& material, const std::string& peer_cert_pem);

class TlsMaterialSource {
 public:
  // Fails (naming the file) when the files are not a valid set now: a member refuses to start.
  static absl::StatusOr<std::unique_ptr<TlsMaterialSource>> Open(TlsFiles files);

  // Re-reads the files. Unchanged bytes: OK, nothing happens. A valid new set: swapped in,
  // generation() grows. An invalid one: the error (naming the file), the last good set stays.
  absl::Status Refresh();
  std::shared_ptr<const TlsMaterial> Current() const;
  uint64_t generation() const;
  const TlsFiles& files() const { return files_; }

 private:
  TlsMaterialSource(TlsFiles files, TlsMaterial first);

  const TlsFiles files_;
  mutable std::mutex mu_;
  std::shared_ptr<const TlsMaterial> current_;  // guarded by mu_
  uint64_t generation_ = 1;                     // guarded by mu_
};

}  // namespace chainfire::tls
