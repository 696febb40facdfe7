#include "chainfire/tls/cipher_suites.h"

#include <cstdlib>
#include <map>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace chainfire::tls {
namespace {

// Go's crypto/tls names (what etcd's --cipher-suites takes) of the TLS 1.2 suites OpenSSL has.
const std::map<std::string, std::string>& Suites() {
  static const std::map<std::string, std::string> suites = {
      {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"},
      {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256"},
      {"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384"},
      {"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"},
      {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "ECDHE-ECDSA-CHACHA20-POLY1305"},
      {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"},
      {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"},
      {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305"},
      {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA-AES128-SHA"},
      {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA"},
      {"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA-AES256-SHA"},
      {"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA"},
      {"TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256"},
      {"TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384"},
      {"TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA"},
      {"TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA"},
  };
  return suites;
}

}  // namespace

absl::StatusOr<std::string> OpenSslCipherList(const std::string& etcd_names) {
  std::vector<std::string> out;
  for (absl::string_view name : absl::StrSplit(etcd_names, ',', absl::SkipWhitespace())) {
    const std::string n(absl::StripAsciiWhitespace(name));
    auto it = Suites().find(n);
    if (it == Suites().end()) {
      std::vector<std::string> known;
      for (const auto& [k, v] : Suites()) known.push_back(k);
      return absl::InvalidArgumentError("--cipher-suites: unknown cipher suite " + n +
                                        " (known: " + absl::StrJoin(known, ", ") + ")");
    }
    out.push_back(it->second);
  }
  return absl::StrJoin(out, ":");
}

absl::Status ApplyCipherSuites(const std::string& etcd_names) {
  if (etcd_names.empty()) return absl::OkStatus();
  auto list = OpenSslCipherList(etcd_names);
  if (!list.ok()) return list.status();
  ::setenv("GRPC_SSL_CIPHER_SUITES", list->c_str(), 1);
  return absl::OkStatus();
}

}  // namespace chainfire::tls
