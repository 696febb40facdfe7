// A member's TLS, from its flags: which ports speak TLS (https:// URLs), the material each uses
// (LiveTls, reloaded while the member runs), and the maximum connection age of TLS servers, which
// bounds how long a connection opened under material since removed (a CA taken out of a bundle)
// lives on. The checks of the flag combinations refuse to start with etcd-like messages.
// Thread-safety: built once in main before the servers; then read only (LiveTls is thread-safe).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "chainfire/tls/live_tls.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"

namespace chainfire::server {

struct MemberTlsFlags {
  std::string cert_file, key_file, trusted_ca_file, client_crl_file;  // client port
  bool client_cert_auth = false;
  std::string peer_cert_file, peer_key_file, peer_trusted_ca_file, peer_crl_file;  // peer port
  bool peer_client_cert_auth = false;
  std::string peer_cert_allowed_cn, peer_cert_allowed_hostname;
  std::string max_connection_age = "1h";  // a duration (absl: "1h", "90s", "500ms"); 0: none
  std::string max_connection_age_grace = "1m";
  std::string data_dir;  // the validated copies live under <data_dir>/tls/{client,peer}
};

class MemberTls {
 public:
  // `client_urls`: --listen-client-urls and --listen-metrics-urls (the metrics listener serves
  // HTTPS with the client TLS, as etcd's); `peer_urls`: every peer URL (listen and membership).
  static absl::StatusOr<MemberTls> FromFlags(const MemberTlsFlags& flags,
                                             const std::vector<std::string>& client_urls,
                                             const std::vector<std::string>& peer_urls);

  // Credentials for one client URL (TLS for https://) and for the peer port and channels
  // (insecure when the peer URLs are http://).
  std::shared_ptr<grpc::ServerCredentials> ClientServerCredentials(const std::string& url) const;
  std::shared_ptr<grpc::ServerCredentials> PeerServerCredentials() const;
  std::shared_ptr<grpc::ChannelCredentials> PeerChannelCredentials() const;
  // The client TLS as OpenSSL contexts for HTTPS listeners (the current material on each call);
  // fails when there is no client TLS or its first context cannot be built.
  absl::StatusOr<std::function<std::shared_ptr<ssl_ctx_st>()>> HttpsContexts() const;
  // Sets the maximum connection age on a server that has a TLS port.
  void LimitConnectionAge(grpc::ServerBuilder* builder) const;
  bool client_tls() const { return client_ != nullptr; }
  bool peer_tls() const { return peer_ != nullptr; }
  // Starts following the files.
  void Start();

 private:
  std::shared_ptr<tls::LiveTls> client_, peer_;
  std::chrono::milliseconds max_age_{0}, grace_{0};
};

}  // namespace chainfire::server
