#include "chainfire/tls/grpc_credentials.h"

#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_certificate_verifier.h"
#include "grpcpp/security/tls_credentials_options.h"
#include "spdlog/spdlog.h"

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

// Refuses a verified certificate whose subject CN is not the allowed one.
class AllowedCnVerifier : public grpc::experimental::ExternalCertificateVerifier {
 public:
  explicit AllowedCnVerifier(std::string allowed_cn) : allowed_cn_(std::move(allowed_cn)) {}

  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)>, grpc::Status* sync_status) override {
    const std::string cn(request->common_name().data(), request->common_name().size());
    if (cn == allowed_cn_) {
      *sync_status = grpc::Status::OK;
    } else {
      spdlog::warn("refused a peer certificate: CN '{}' is not the allowed CN '{}'", cn,
                   allowed_cn_);
      *sync_status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                  "certificate CN '" + cn + "' is not allowed");
    }
    return true;  // decided synchronously
  }
  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest*) override {}

 private:
  const std::string allowed_cn_;
};

}  // namespace

std::shared_ptr<grpc::ServerCredentials> ServerCredentialsFor(const TlsMaterial& material,
                                                              bool client_cert_auth,
                                                              const std::string& allowed_cn) {
  grpc::experimental::TlsServerCredentialsOptions options(ProviderFor(material));
  if (client_cert_auth && !allowed_cn.empty()) {
    options.set_certificate_verifier(
        grpc::experimental::ExternalCertificateVerifier::Create<AllowedCnVerifier>(allowed_cn));
  }
  options.watch_identity_key_cert_pairs();
  if (!material.ca_pem.empty()) options.watch_root_certs();
  options.set_cert_request_type(client_cert_auth
                                    ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                    : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  return grpc::experimental::TlsServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentialsFor(const TlsMaterial& material) {
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(ProviderFor(material));
  if (!material.cert_pem.empty()) options.watch_identity_key_cert_pairs();
  if (!material.ca_pem.empty()) options.watch_root_certs();
  options.set_verify_server_certs(true);
  return grpc::experimental::TlsCredentials(options);
}

}  // namespace chainfire::tls
