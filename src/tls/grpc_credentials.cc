#include "chainfire/tls/grpc_credentials.h"

#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace chainfire::tls {
namespace {

std::shared_ptr<grpc::experimental::CertificateProviderInterface> ProviderFor(
    const TlsMaterial& material) {
  if (material.cert_pem.empty()) {
    return std::make_shared<grpc::experimental::StaticDataCertificateProvider>(material.ca_pem);
  }
  std::vector<grpc::experimental::IdentityKeyCertPair> identity = {
      {material.key_pem, material.cert_pem}};
  if (material.ca_pem.empty()) {
    return std::make_shared<grpc::experimental::StaticDataCertificateProvider>(identity);
  }
  return std::make_shared<grpc::experimental::StaticDataCertificateProvider>(material.ca_pem,
                                                                             identity);
}

}  // namespace

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentialsFor(const TlsMaterial& material) {
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(ProviderFor(material));
  if (!material.cert_pem.empty()) options.watch_identity_key_cert_pairs();
  if (!material.ca_pem.empty()) options.watch_root_certs();
  options.set_verify_server_certs(true);
  return grpc::experimental::TlsCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ClientChannelCredentials(
    const ClientTlsFlags& flags, bool https) {
  if (flags.cacert.empty() && flags.cert.empty() && flags.key.empty()) {
    if (https) return grpc::SslCredentials(grpc::SslCredentialsOptions());  // system roots
    return grpc::InsecureChannelCredentials();
  }
  auto material = LoadTlsMaterial({flags.cert, flags.key, flags.cacert, ""});
  if (!material.ok()) return material.status();
  return ChannelCredentialsFor(*material);
}

}  // namespace chainfire::tls
