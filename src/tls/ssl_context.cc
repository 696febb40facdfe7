#include "chainfire/tls/ssl_context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace chainfire::tls {
namespace {

std::string LastError() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  const char* reason = e ? ERR_reason_error_string(e) : nullptr;
  return reason ? reason : "unknown";
}

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};

std::unique_ptr<BIO, BioFree> MemoryBio(const std::string& s) {
  return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(s.data(), static_cast<int>(s.size())));
}

}  // namespace

absl::StatusOr<std::shared_ptr<SSL_CTX>> ServerSslContext(const TlsMaterial& m,
                                                          bool client_cert_auth) {
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  if (!ctx) return absl::InternalError("cannot create a TLS context: " + LastError());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  if (const char* ciphers = std::getenv("GRPC_SSL_CIPHER_SUITES")) {
    if (SSL_CTX_set_cipher_list(ctx.get(), ciphers) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("cipher suites ", ciphers, ": ", LastError()));
    }
  }
  // The certificate, then its chain, then the key.
  auto cert_bio = MemoryBio(m.cert_pem);
  X509* leaf = PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr);
  if (!leaf || SSL_CTX_use_certificate(ctx.get(), leaf) != 1) {
    if (leaf) X509_free(leaf);
    return absl::InvalidArgumentError("the certificate cannot be used: " + LastError());
  }
  X509_free(leaf);
  while (X509* extra = PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add0_chain_cert(ctx.get(), extra) != 1) {
      X509_free(extra);
      return absl::InvalidArgumentError("the certificate chain cannot be used: " + LastError());
    }
  }
  ERR_clear_error();  // the end of the chain reads as an error
  auto key_bio = MemoryBio(m.key_pem);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr);
  const bool key_ok = key && SSL_CTX_use_PrivateKey(ctx.get(), key) == 1 &&
                      SSL_CTX_check_private_key(ctx.get()) == 1;
  if (key) EVP_PKEY_free(key);
  if (!key_ok) return absl::InvalidArgumentError("the key cannot be used: " + LastError());

  if (client_cert_auth) {
    X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
    auto ca_bio = MemoryBio(m.ca_pem);
    int cas = 0;
    while (X509* ca = PEM_read_bio_X509(ca_bio.get(), nullptr, nullptr, nullptr)) {
      X509_STORE_add_cert(store, ca);
      X509_free(ca);
      ++cas;
    }
    ERR_clear_error();
    if (cas == 0) return absl::InvalidArgumentError("client certificates need a trusted CA");
    if (!m.crl_pem.empty()) {
      auto crl_bio = MemoryBio(m.crl_pem);
      X509_CRL* crl = PEM_read_bio_X509_CRL(crl_bio.get(), nullptr, nullptr, nullptr);
      if (!crl) return absl::InvalidArgumentError("the CRL cannot be used: " + LastError());
      X509_STORE_add_crl(store, crl);
      X509_CRL_free(crl);
      X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    }
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  return ctx;
}

}  // namespace chainfire::tls
