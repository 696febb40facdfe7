// LiveTls: the TLS of one port family of a running member (its client port or its peer port and
// peer channels), rotated without a restart.
//
// It watches the operator's files (certificate, key, trusted-CA bundle, CRL: TlsFiles) and, when
// they change, re-reads and validates them as a set (tls_material.h) before anything uses them.
// A valid new set is written to private copies in `private_dir` (the key with its certificate in
// one file, so the pair is replaced by one rename), which gRPC's FileWatcherCertificateProvider
// serves to every new handshake within its refresh interval. A half-written, unreadable or
// mismatched set is never copied: the last good material stays and the reason is logged once.
// (gRPC's file watcher on the operator's files would clear its material on an unreadable file.)
//
// Server credentials check, after gRPC verified the client certificate's chain against the
// current bundle: the current CRL (a revoked certificate is refused on its next handshake), the
// allowed CN and the allowed hostname (etcd's --peer-cert-allowed-cn / -hostname). Connections
// opened before a CA was removed are not cut here: the member sets a maximum connection age on
// TLS servers (docs/security.md states the bound).
//
// Thread-safety: all methods may be called from any thread; Start() once. The destructor stops
// the reload thread; destroy it after the servers and channels that use its credentials.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "chainfire/tls/ssl_context.h"
#include "chainfire/tls/tls_material.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/security/tls_certificate_provider.h"

namespace chainfire::tls {

class LiveTls {
 public:
  struct Options {
    std::string role;               // "client" or "peer": names the port in log lines
    TlsFiles files;                 // the operator's files; cert_file and key_file are required
    std::string private_dir;        // made if missing (mode 0700); the validated copies live here
    bool client_cert_auth = false;  // servers require and verify a client certificate
    std::string allowed_cn;         // with client_cert_auth: the only subject CN accepted
    std::string allowed_hostname;   // with client_cert_auth: a SAN the certificate must hold
    int refresh_interval_sec = 1;   // how often the files are looked at
  };

  // Fails (naming the file) when the files are not a valid set now: the member refuses to start.
  static absl::StatusOr<std::unique_ptr<LiveTls>> Open(Options options);
  ~LiveTls();

  std::shared_ptr<grpc::ServerCredentials> ServerCredentials();
  // For dialing a peer: verifies its certificate against the current bundle and its name against
  // the address dialed, and presents the current certificate.
  std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials();

  // Starts the thread that calls Reload() every refresh interval and logs what happened.
  void Start();
  // One look at the files: unchanged: OK; a valid new set: copied for gRPC, generation() grows;
  // an invalid one: its error, the last good set stays.
  absl::Status Reload();
  uint64_t generation() const { return source_->generation(); }
  // An OpenSSL server context of the current material (ssl_context.h), for the HTTP listeners;
  // rebuilt when the material changes. Fails only when the first one cannot be built.
  absl::StatusOr<std::shared_ptr<SSL_CTX>> SslContext();
  std::shared_ptr<const TlsMaterial> Current() const { return source_->Current(); }

 private:
  LiveTls(Options options, std::shared_ptr<TlsMaterialSource> source);
  absl::Status WriteCopies(const TlsMaterial& m);
  void Loop();

  const Options options_;
  const std::shared_ptr<TlsMaterialSource> source_;  // shared with the verifiers
  std::string identity_path_, ca_path_;
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;                 // guarded by mu_
  std::string last_refusal_;              // guarded by mu_: logged once until it changes
  int64_t last_mtime_ = 0;                // guarded by mu_: the copies' mtimes only grow
  uint64_t copied_generation_ = 0;        // guarded by mu_: the material the copies hold
  std::shared_ptr<SSL_CTX> ssl_context_;  // guarded by mu_
  uint64_t ssl_generation_ = 0;           // guarded by mu_: the material ssl_context_ holds
  std::thread thread_;
};

}  // namespace chainfire::tls
