#include "chainfire/tls/tls_material.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace chainfire::tls {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CrlFree {
  void operator()(X509_CRL* c) const { X509_CRL_free(c); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
using Cert = std::unique_ptr<X509, X509Free>;

absl::StatusOr<std::string> ReadFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(what, " ", path, ": cannot be read"));
  std::ostringstream out;
  out << in.rdbuf();
  if (!in.good() && !in.eof()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " ", path, ": read failed"));
  }
  return out.str();
}

Bio MemoryBio(const std::string& bytes) {
  return Bio(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
}

// OpenSSL's reason for the last failure (and clears its error queue).
std::string OpenSslReason() {
  const unsigned long e = ERR_peek_last_error();
  std::string reason = e == 0 ? "not valid PEM" : ERR_reason_error_string(e);
  ERR_clear_error();
  return reason;
}

// Every certificate in a PEM text, in order.
std::vector<Cert> ReadCerts(const std::string& pem) {
  std::vector<Cert> out;
  Bio bio = MemoryBio(pem);
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(x);
  ERR_clear_error();  // the end of the text reads as an error
  return out;
}

// How many PEM certificates a text begins: a truncated or damaged one among them is an error,
// not a certificate silently left out of a bundle.
size_t CertificatesBegun(const std::string& pem) {
  size_t n = 0;
  for (size_t at = pem.find("-----BEGIN CERTIFICATE-----"); at != std::string::npos;
       at = pem.find("-----BEGIN CERTIFICATE-----", at + 1)) {
    ++n;
  }
  return n;
}

// Every certificate of a file, or an error naming it when one of them does not parse.
absl::StatusOr<std::vector<Cert>> ReadAllCerts(const std::string& pem, const char* what,
                                               const std::string& path) {
  std::vector<Cert> certs = ReadCerts(pem);
  const size_t begun = CertificatesBegun(pem);
  if (certs.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " ", path, ": no PEM certificate in it"));
  }
  if (certs.size() != begun) {
    return absl::InvalidArgumentError(absl::StrCat(what, " ", path, ": ", begun,
                                                   " certificates begin but ", certs.size(),
                                                   " parse (truncated or damaged)"));
  }
  return certs;
}

std::string NameLine(const X509_NAME* name) {
  char buf[512];
  X509_NAME_oneline(name, buf, sizeof(buf));
  return buf;
}

std::string SubjectLine(X509* x) { return NameLine(X509_get_subject_name(x)); }

// A revoked certificate is named by its issuer and serial number.
std::string RevocationId(const X509_NAME* issuer, const ASN1_INTEGER* serial) {
  std::unique_ptr<BIGNUM, decltype(&BN_free)> bn(ASN1_INTEGER_to_BN(serial, nullptr), BN_free);
  std::string hex = "?";
  if (bn) {
    char* h = BN_bn2hex(bn.get());
    hex = h;
    OPENSSL_free(h);
  }
  return NameLine(issuer) + " serial " + hex;
}

std::string CommonName(X509* x) {
  char buf[256] = {0};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, sizeof(buf)) < 0) {
    return "";
  }
  return buf;
}

// Reads and checks a CA bundle into m->ca_pem and m->ca_subjects.
absl::Status ReadTrustedCas(const std::string& path, TlsMaterial* m) {
  auto ca = ReadFile(path, "trusted CA file");
  if (!ca.ok()) return ca.status();
  m->ca_pem = std::move(*ca);
  auto cas = ReadAllCerts(m->ca_pem, "trusted CA file", path);
  if (!cas.ok()) return cas.status();
  for (const Cert& c : *cas) m->ca_subjects.push_back(SubjectLine(c.get()));
  return absl::OkStatus();
}

// Reads a CRL into m->crl_pem and m->revoked; it must be signed by a CA of m's bundle.
absl::Status ReadCrl(const std::string& path, TlsMaterial* m) {
  auto crl = ReadFile(path, "CRL file");
  if (!crl.ok()) return crl.status();
  m->crl_pem = std::move(*crl);
  Bio crl_bio = MemoryBio(m->crl_pem);
  std::unique_ptr<X509_CRL, CrlFree> parsed(
      PEM_read_bio_X509_CRL(crl_bio.get(), nullptr, nullptr, nullptr));
  if (!parsed) {
    return absl::InvalidArgumentError(
        absl::StrCat("CRL file ", path, ": no PEM CRL in it (", OpenSslReason(), ")"));
  }
  bool signed_by_a_ca = false;
  for (const Cert& ca : ReadCerts(m->ca_pem)) {
    if (X509_NAME_cmp(X509_get_subject_name(ca.get()), X509_CRL_get_issuer(parsed.get())) == 0 &&
        X509_CRL_verify(parsed.get(), X509_get0_pubkey(ca.get())) == 1) {
      signed_by_a_ca = true;
    }
  }
  ERR_clear_error();
  if (!signed_by_a_ca) {
    return absl::InvalidArgumentError(
        absl::StrCat("CRL file ", path, ": not signed by a CA of the trusted CA file (issuer ",
                     NameLine(X509_CRL_get_issuer(parsed.get())), ")"));
  }
  STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(parsed.get());
  for (int i = 0; i < sk_X509_REVOKED_num(revoked); ++i) {
    const X509_REVOKED* r = sk_X509_REVOKED_value(revoked, i);
    m->revoked.push_back(
        RevocationId(X509_CRL_get_issuer(parsed.get()), X509_REVOKED_get0_serialNumber(r)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TlsMaterial> LoadTlsMaterial(const TlsFiles& files) {
  TlsMaterial m;
  if (files.cert_file.empty() != files.key_file.empty()) {
    return absl::InvalidArgumentError(
        "a certificate file and a key file go together: give both or neither");
  }
  if (files.cert_file.empty()) {  // trust only: a client without a certificate
    if (files.trusted_ca_file.empty()) {
      return absl::InvalidArgumentError("no certificate, key or trusted CA file given");
    }
    if (absl::Status s = ReadTrustedCas(files.trusted_ca_file, &m); !s.ok()) return s;
    return m;
  }
  auto cert = ReadFile(files.cert_file, "certificate file");
  if (!cert.ok()) return cert.status();
  auto key = ReadFile(files.key_file, "key file");
  if (!key.ok()) return key.status();
  m.cert_pem = std::move(*cert);
  m.key_pem = std::move(*key);

  auto read_chain = ReadAllCerts(m.cert_pem, "certificate file", files.cert_file);
  if (!read_chain.ok()) return read_chain.status();
  std::vector<Cert> chain = std::move(*read_chain);
  Bio key_bio = MemoryBio(m.key_pem);
  std::unique_ptr<EVP_PKEY, KeyFree> pkey(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!pkey) {
    return absl::InvalidArgumentError(absl::StrCat(
        "key file ", files.key_file, ": no PEM private key in it (", OpenSslReason(), ")"));
  }
  if (X509_check_private_key(chain.front().get(), pkey.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        "key file ", files.key_file, " does not match the certificate in ", files.cert_file));
  }
  m.subject_cn = CommonName(chain.front().get());

  if (!files.trusted_ca_file.empty()) {
    if (absl::Status s = ReadTrustedCas(files.trusted_ca_file, &m); !s.ok()) return s;
  }
  if (!files.crl_file.empty()) {
    if (absl::Status s = ReadCrl(files.crl_file, &m); !s.ok()) return s;
  }
  return m;
}

absl::Status CheckNotRevoked(const TlsMaterial& material, const std::string& peer_cert_pem) {
  if (material.revoked.empty()) return absl::OkStatus();
  std::vector<Cert> certs = ReadCerts(peer_cert_pem);
  if (certs.empty()) return absl::PermissionDeniedError("the peer certificate does not parse");
  X509* x = certs.front().get();
  const std::string id = RevocationId(X509_get_issuer_name(x), X509_get0_serialNumber(x));
  for (const std::string& r : material.revoked) {
    if (r == id) {
      return absl::PermissionDeniedError(
          absl::StrCat("certificate ", SubjectLine(x), " (issuer ", id, ") is revoked by the CRL"));
    }
  }
  return absl::OkStatus();
}

TlsMaterialSource::TlsMaterialSource(TlsFiles files, TlsMaterial first)
    : files_(std::move(files)), current_(std::make_shared<const TlsMaterial>(std::move(first))) {}

absl::StatusOr<std::unique_ptr<TlsMaterialSource>> TlsMaterialSource::Open(TlsFiles files) {
  auto m = LoadTlsMaterial(files);
  if (!m.ok()) return m.status();
  return std::unique_ptr<TlsMaterialSource>(new TlsMaterialSource(std::move(files), *m));
}

absl::Status TlsMaterialSource::Refresh() {
  auto m = LoadTlsMaterial(files_);
  if (!m.ok()) return m.status();  // the last good material stays
  std::lock_guard<std::mutex> l(mu_);
  if (m->cert_pem == current_->cert_pem && m->key_pem == current_->key_pem &&
      m->ca_pem == current_->ca_pem && m->crl_pem == current_->crl_pem) {
    return absl::OkStatus();
  }
  current_ = std::make_shared<const TlsMaterial>(std::move(*m));
  ++generation_;
  return absl::OkStatus();
}

std::shared_ptr<const TlsMaterial> TlsMaterialSource::Current() const {
  std::lock_guard<std::mutex> l(mu_);
  return current_;
}

uint64_t TlsMaterialSource::generation() const {
  std::lock_guard<std::mutex> l(mu_);
  return generation_;
}

}  // namespace chainfire::tls
