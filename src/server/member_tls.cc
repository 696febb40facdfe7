#include "chainfire/server/member_tls.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "spdlog/spdlog.h"

namespace chainfire::server {
namespace {

bool Https(const std::string& url) { return absl::StartsWith(url, "https://"); }

absl::StatusOr<std::chrono::milliseconds> ParseAge(const std::string& text, const char* flag) {
  absl::Duration d;
  if (text == "0") return std::chrono::milliseconds(0);
  if (!absl::ParseDuration(text, &d) || d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", text, ": not a duration (e.g. 1h, 10m, 30s, 0 for none)"));
  }
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

}  // namespace

absl::StatusOr<MemberTls> MemberTls::FromFlags(const MemberTlsFlags& f,
                                               const std::vector<std::string>& client_urls,
                                               const std::vector<std::string>& peer_urls) {
  MemberTls tls;
  auto age = ParseAge(f.max_connection_age, "--tls-max-connection-age");
  if (!age.ok()) return age.status();
  auto grace = ParseAge(f.max_connection_age_grace, "--tls-max-connection-age-grace");
  if (!grace.ok()) return grace.status();
  tls.max_age_ = *age;
  tls.grace_ = *grace;

  // Client port: TLS when a --listen-client-urls URL is https:// (http:// ones may sit beside).
  if (std::any_of(client_urls.begin(), client_urls.end(), Https)) {
    if (f.cert_file.empty() || f.key_file.empty()) {
      return absl::InvalidArgumentError(
          "--listen-client-urls has an https:// URL: --cert-file and --key-file are required");
    }
    if (f.client_cert_auth && f.trusted_ca_file.empty()) {
      return absl::InvalidArgumentError(
          "--client-cert-auth needs --trusted-ca-file (the CAs client certificates must come "
          "from)");
    }
    if (!f.client_crl_file.empty() && !f.client_cert_auth) {
      return absl::InvalidArgumentError("--client-crl-file needs --client-cert-auth");
    }
    auto live = tls::LiveTls::Open({"client",
                                    {f.cert_file, f.key_file, f.trusted_ca_file, f.client_crl_file},
                                    f.data_dir + "/tls/client",
                                    f.client_cert_auth});
    if (!live.ok()) return live.status();
    tls.client_ = std::move(*live);
  } else if (!f.cert_file.empty() || f.client_cert_auth || !f.client_crl_file.empty()) {
    return absl::InvalidArgumentError(
        "--cert-file / --client-cert-auth given but no https:// URL in --listen-client-urls or "
        "--listen-metrics-urls");
  }

  // Peer port and channels: every peer URL https:// or none.
  const auto https_peers = std::count_if(peer_urls.begin(), peer_urls.end(), Https);
  if (https_peers > 0) {
    if (static_cast<size_t>(https_peers) != peer_urls.size()) {
      return absl::InvalidArgumentError(
          "peer URLs mix http:// and https:// (--listen-peer-urls, --initial-cluster): use one");
    }
    if (f.peer_cert_file.empty() || f.peer_key_file.empty() || f.peer_trusted_ca_file.empty()) {
      return absl::InvalidArgumentError(
          "https:// peer URLs need --peer-cert-file, --peer-key-file and --peer-trusted-ca-file");
    }
    if (!f.peer_client_cert_auth &&
        (!f.peer_cert_allowed_cn.empty() || !f.peer_cert_allowed_hostname.empty() ||
         !f.peer_crl_file.empty())) {
      return absl::InvalidArgumentError(
          "--peer-cert-allowed-cn, --peer-cert-allowed-hostname and --peer-crl-file need "
          "--peer-client-cert-auth");
    }
    if (!f.peer_cert_allowed_cn.empty() && !f.peer_cert_allowed_hostname.empty()) {
      return absl::InvalidArgumentError(
          "--peer-cert-allowed-cn and --peer-cert-allowed-hostname cannot both be given (as etcd)");
    }
    auto live = tls::LiveTls::Open(
        {"peer",
         {f.peer_cert_file, f.peer_key_file, f.peer_trusted_ca_file, f.peer_crl_file},
         f.data_dir + "/tls/peer",
         f.peer_client_cert_auth,
         f.peer_cert_allowed_cn,
         f.peer_cert_allowed_hostname});
    if (!live.ok()) return live.status();
    tls.peer_ = std::move(*live);
  } else if (!f.peer_cert_file.empty() || f.peer_client_cert_auth) {
    return absl::InvalidArgumentError(
        "--peer-cert-file / --peer-client-cert-auth given but the peer URLs are http://");
  }
  return tls;
}

std::shared_ptr<grpc::ServerCredentials> MemberTls::ClientServerCredentials(
    const std::string& url) const {
  return Https(url) ? client_->ServerCredentials() : grpc::InsecureServerCredentials();
}

std::shared_ptr<grpc::ServerCredentials> MemberTls::PeerServerCredentials() const {
  return peer_ ? peer_->ServerCredentials() : grpc::InsecureServerCredentials();
}

std::shared_ptr<grpc::ChannelCredentials> MemberTls::PeerChannelCredentials() const {
  return peer_ ? peer_->ChannelCredentials() : nullptr;
}

absl::StatusOr<std::function<std::shared_ptr<ssl_ctx_st>()>> MemberTls::HttpsContexts() const {
  if (!client_) {
    return absl::InvalidArgumentError(
        "an https:// metrics URL needs the client TLS flags (--cert-file, --key-file)");
  }
  if (auto first = client_->SslContext(); !first.ok()) return first.status();
  std::shared_ptr<tls::LiveTls> live = client_;
  return std::function<std::shared_ptr<ssl_ctx_st>()>([live] {
    auto ctx = live->SslContext();
    return ctx.ok() ? *ctx : nullptr;
  });
}

void MemberTls::LimitConnectionAge(grpc::ServerBuilder* builder) const {
  if (max_age_.count() == 0) return;
  builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, static_cast<int>(max_age_.count()));
  builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                              static_cast<int>(grace_.count()));
}

void MemberTls::Start() {
  if (client_) client_->Start();
  if (peer_) peer_->Start();
}

}  // namespace chainfire::server
