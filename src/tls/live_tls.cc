#include "chainfire/tls/live_tls.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "chainfire/common/thread_name.h"
#include "grpcpp/security/tls_certificate_verifier.h"
#include "grpcpp/security/tls_credentials_options.h"
#include "spdlog/spdlog.h"

namespace chainfire::tls {
namespace {

std::string View(grpc::string_ref s) { return std::string(s.data(), s.size()); }

// What a server checks in a client certificate once gRPC verified its chain: the CRL of the
// current material, then the allowed CN and hostname. Decides synchronously.
class ClientCertificateChecks : public grpc::experimental::ExternalCertificateVerifier {
 public:
  ClientCertificateChecks(std::shared_ptr<TlsMaterialSource> source, std::string role,
                          std::string allowed_cn, std::string allowed_hostname)
      : source_(std::move(source)),
        role_(std::move(role)),
        allowed_cn_(std::move(allowed_cn)),
        allowed_hostname_(std::move(allowed_hostname)) {}

  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)>, grpc::Status* sync_status) override {
    const std::string refusal = RefusalOf(*request);
    if (refusal.empty()) {
      *sync_status = grpc::Status::OK;
    } else {
      spdlog::warn("{} port: refused a TLS client: {}", role_, refusal);
      *sync_status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED, refusal);
    }
    return true;
  }
  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest*) override {}

 private:
  std::string RefusalOf(const grpc::experimental::TlsCustomVerificationCheckRequest& r) const {
    if (absl::Status s = CheckNotRevoked(*source_->Current(), View(r.peer_cert())); !s.ok()) {
      return std::string(s.message());
    }
    const std::string cn = View(r.common_name());
    if (!allowed_cn_.empty() && cn != allowed_cn_) {
      return absl::StrCat("certificate CN '", cn, "' is not the allowed CN '", allowed_cn_, "'");
    }
    if (!allowed_hostname_.empty()) {
      std::vector<std::string> names;
      for (const auto& n : r.dns_names()) names.push_back(View(n));
      for (const auto& n : r.ip_names()) names.push_back(View(n));
      if (std::find(names.begin(), names.end(), allowed_hostname_) == names.end()) {
        return absl::StrCat("certificate of CN '", cn, "' is not valid for the allowed hostname '",
                            allowed_hostname_, "' (it names: ", absl::StrJoin(names, ", "), ")");
      }
    }
    return "";
  }

  const std::shared_ptr<TlsMaterialSource> source_;
  const std::string role_, allowed_cn_, allowed_hostname_;
};

// Writes `bytes` to `path` by a rename (readers see the old or the new file, never a part),
// readable by this user only, with modification time `mtime`: gRPC's file watcher compares
// modification times (in seconds) around its reads to notice a file replaced under it.
absl::Status WriteAtomically(const std::string& path, const std::string& bytes, time_t mtime) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat(tmp, ": ", std::strerror(errno)));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd);
      return absl::InternalError(absl::StrCat(tmp, ": ", std::strerror(e)));
    }
    done += static_cast<size_t>(n);
  }
  const struct timespec times[2] = {{mtime, 0}, {mtime, 0}};
  const bool ok = ::futimens(fd, times) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat(path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

LiveTls::LiveTls(Options options, std::shared_ptr<TlsMaterialSource> source)
    : options_(std::move(options)),
      source_(std::move(source)),
      identity_path_(options_.private_dir + "/identity.pem"),
      ca_path_(options_.private_dir + "/ca.pem") {}

absl::StatusOr<std::unique_ptr<LiveTls>> LiveTls::Open(Options options) {
  if (options.files.cert_file.empty() || options.files.key_file.empty()) {
    return absl::InvalidArgumentError("a certificate file and a key file are required");
  }
  auto source = TlsMaterialSource::Open(options.files);
  if (!source.ok()) return source.status();
  std::error_code ec;
  std::filesystem::create_directories(options.private_dir, ec);
  if (ec || ::chmod(options.private_dir.c_str(), 0700) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot make the directory ", options.private_dir, ": ", ec.message()));
  }
  std::unique_ptr<LiveTls> live(new LiveTls(std::move(options), std::move(*source)));
  if (absl::Status s = live->WriteCopies(*live->source_->Current()); !s.ok()) return s;
  live->copied_generation_ = live->source_->generation();
  live->provider_ = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      live->identity_path_, live->identity_path_,
      live->options_.files.trusted_ca_file.empty() ? "" : live->ca_path_,
      static_cast<unsigned>(live->options_.refresh_interval_sec));
  return live;
}

LiveTls::~LiveTls() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

absl::Status LiveTls::WriteCopies(const TlsMaterial& m) {
  time_t mtime;
  {
    std::lock_guard<std::mutex> l(mu_);
    last_mtime_ = std::max<int64_t>(last_mtime_ + 1, std::time(nullptr));
    mtime = static_cast<time_t>(last_mtime_);
  }
  // The key and its certificate chain in one file: OpenSSL takes the key block when reading the
  // key and the certificate blocks when reading the chain, and one rename replaces the pair.
  if (absl::Status s = WriteAtomically(identity_path_, m.key_pem + "\n" + m.cert_pem, mtime);
      !s.ok()) {
    return s;
  }
  if (m.ca_pem.empty()) return absl::OkStatus();
  return WriteAtomically(ca_path_, m.ca_pem, mtime);
}

std::shared_ptr<grpc::ServerCredentials> LiveTls::ServerCredentials() {
  grpc::experimental::TlsServerCredentialsOptions options(provider_);
  options.watch_identity_key_cert_pairs();
  if (!options_.files.trusted_ca_file.empty()) options.watch_root_certs();
  if (options_.client_cert_auth) {
    options.set_certificate_verifier(
        grpc::experimental::ExternalCertificateVerifier::Create<ClientCertificateChecks>(
            source_, options_.role, options_.allowed_cn, options_.allowed_hostname));
  }
  options.set_cert_request_type(options_.client_cert_auth
                                    ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                    : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  return grpc::experimental::TlsServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> LiveTls::ChannelCredentials() {
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(provider_);
  options.watch_identity_key_cert_pairs();
  if (!options_.files.trusted_ca_file.empty()) options.watch_root_certs();
  options.set_verify_server_certs(true);
  return grpc::experimental::TlsCredentials(options);
}

absl::Status LiveTls::Reload() {
  if (absl::Status s = source_->Refresh(); !s.ok()) return s;
  const uint64_t generation = source_->generation();
  {
    std::lock_guard<std::mutex> l(mu_);
    if (copied_generation_ == generation) return absl::OkStatus();
  }
  if (absl::Status s = WriteCopies(*source_->Current()); !s.ok()) return s;  // retried next time
  std::lock_guard<std::mutex> l(mu_);
  copied_generation_ = generation;
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<SSL_CTX>> LiveTls::SslContext() {
  const uint64_t generation = source_->generation();
  std::lock_guard<std::mutex> l(mu_);
  if (ssl_context_ && ssl_generation_ == generation) return ssl_context_;
  auto ctx = ServerSslContext(*source_->Current(), options_.client_cert_auth);
  if (!ctx.ok()) {
    if (!ssl_context_) return ctx.status();
    spdlog::error("{} TLS: kept the last HTTP TLS context: {}", options_.role,
                  std::string(ctx.status().message()));
    ssl_generation_ = generation;  // not retried until the material changes again
    return ssl_context_;
  }
  ssl_context_ = *ctx;
  ssl_generation_ = generation;
  return ssl_context_;
}

void LiveTls::Start() {
  thread_ = std::thread([this] {
    SetThreadName("cf-tls-reload");
    Loop();
  });
}

void LiveTls::Loop() {
  std::unique_lock<std::mutex> l(mu_);
  while (!cv_.wait_for(l, std::chrono::seconds(options_.refresh_interval_sec),
                       [this] { return stopping_; })) {
    l.unlock();
    const uint64_t before = source_->generation();
    const absl::Status s = Reload();
    l.lock();
    if (!s.ok()) {
      if (s.ToString() != last_refusal_) {
        spdlog::error("{} TLS: kept the last good certificate, key and CAs: {}", options_.role,
                      std::string(s.message()));
        last_refusal_ = s.ToString();
      }
    } else {
      last_refusal_.clear();
      if (source_->generation() != before) {
        const auto m = source_->Current();
        spdlog::info("{} TLS: new material taken (certificate CN '{}', {} trusted CAs, {} revoked)",
                     options_.role, m->subject_cn, m->ca_subjects.size(), m->revoked.size());
      }
    }
  }
}

}  // namespace chainfire::tls
