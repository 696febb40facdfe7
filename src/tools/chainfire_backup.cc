// chainfire-backup: save, verify, inspect and restore ChainFire backups
// (docs/backup-format.md, docs/operations.md "Backup and restore").
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "chainfire/backup/restore.h"
#include "chainfire/backup/state_dump.h"
#include "chainfire/server/cluster_config.h"
#include "chainfire/server/services.h"
#include "chainfire/tls/grpc_credentials.h"
#include "etcd/rpc.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace cf = chainfire;
namespace fs = std::filesystem;

namespace {

int Fail(const absl::Status& s) {
  std::cerr << "chainfire-backup: " << s.message() << "\n";
  return 1;
}

std::string Endpoint(std::string e) {
  for (const char* scheme : {"http://", "https://"}) {
    if (e.rfind(scheme, 0) == 0) e = e.substr(std::string(scheme).size());
  }
  return e;
}

// Streams Maintenance.Snapshot from `endpoint` into `path`; with `user` ("name:password", as
// etcdctl's --user), signs in first (a cluster with auth on serves snapshots to root only).
absl::Status FetchSnapshot(const std::string& endpoint, const std::string& path, int timeout_s,
                           const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                           const std::string& user) {
  auto channel = grpc::CreateChannel(Endpoint(endpoint), credentials);
  auto stub = etcdserverpb::Maintenance::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_s));
  if (!user.empty()) {
    const size_t colon = user.find(':');
    etcdserverpb::AuthenticateRequest login;
    login.set_name(user.substr(0, colon));
    if (colon != std::string::npos) login.set_password(user.substr(colon + 1));
    etcdserverpb::AuthenticateResponse token;
    grpc::ClientContext login_ctx;
    login_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_s));
    grpc::Status st = etcdserverpb::Auth::NewStub(channel)->Authenticate(&login_ctx, login, &token);
    if (!st.ok()) {
      return absl::PermissionDeniedError(
          absl::StrCat("signing in to ", endpoint, " failed: ", st.error_message()));
    }
    ctx.AddMetadata("token", token.token());
  }
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return absl::InternalError(absl::StrCat("cannot create ", path));
  etcdserverpb::SnapshotRequest req;
  auto reader = stub->Snapshot(&ctx, req);
  etcdserverpb::SnapshotResponse resp;
  bool write_ok = true;
  while (reader->Read(&resp)) {
    write_ok &= std::fwrite(resp.blob().data(), 1, resp.blob().size(), f) == resp.blob().size();
  }
  grpc::Status st = reader->Finish();
  write_ok &= std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
  std::fclose(f);
  if (!st.ok()) {
    return absl::UnavailableError(
        absl::StrCat("snapshot from ", endpoint, " failed: ", st.error_message()));
  }
  if (!write_ok) return absl::InternalError(absl::StrCat("writing ", path, " failed"));
  return absl::OkStatus();
}

using cf::tls::ClientTlsFlags;

// Plaintext unless a TLS flag or an https:// endpoint asks for TLS; the files are checked first.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ClientCredentials(
    const ClientTlsFlags& tls, const std::vector<std::string>& endpoints) {
  bool https = false;
  for (const std::string& list : endpoints) https |= list.find("https://") != std::string::npos;
  return cf::tls::ClientChannelCredentials(tls, https);
}

int Save(const std::vector<std::string>& endpoints, const std::string& data_dir,
         const std::string& file, int timeout_s, const ClientTlsFlags& tls,
         const std::string& user) {
  if (endpoints.empty() == data_dir.empty()) {
    return Fail(absl::InvalidArgumentError("save needs exactly one of --endpoints, --data-dir"));
  }
  absl::StatusOr<cf::backup::BackupSummary> summary;
  if (!data_dir.empty()) {
    // Offline: from a stopped member's data dir (RocksDB's lock refuses a running one).
    if (!fs::exists(fs::path(data_dir) / "CURRENT")) {
      return Fail(absl::NotFoundError(absl::StrCat(data_dir, " is not a ChainFire data dir")));
    }
    auto engine = cf::storage::Engine::Open(data_dir);
    if (!engine.ok()) {
      return Fail(absl::FailedPreconditionError(
          absl::StrCat("cannot open ", data_dir,
                       " (is the member still running?): ", engine.status().message())));
    }
    cf::backup::BackupHeader header;
    if (auto m = cf::backup::LoadMembership(engine->get()); m.ok()) header = *m;
    header.set_chainfire_version(cf::server::kChainfireVersion);
    summary = cf::backup::WriteBackupFile(file, [&](cf::backup::BackupWriter* w) {
      return cf::backup::WriteLogicalBackup(engine->get(), nullptr, header, w);
    });
    if (!summary.ok()) return Fail(summary.status());
    summary = cf::backup::VerifyFile(file);
  } else {
    const std::string part = file + ".part";
    auto credentials = ClientCredentials(tls, endpoints);
    if (!credentials.ok()) return Fail(credentials.status());
    absl::Status last;
    for (const std::string& list : endpoints) {
      for (absl::string_view e : absl::StrSplit(list, ',', absl::SkipEmpty())) {
        last = FetchSnapshot(std::string(e), part, timeout_s, *credentials, user);
        if (last.ok()) break;
        std::cerr << "chainfire-backup: " << last.message() << "\n";
      }
      if (last.ok()) break;
    }
    if (last.ok()) {
      summary = cf::backup::VerifyFile(part);
      if (!summary.ok()) last = summary.status();
    }
    std::error_code ec;
    if (!last.ok()) {
      fs::remove(part, ec);
      return Fail(last);
    }
    fs::rename(part, file, ec);
    if (ec) return Fail(absl::InternalError(absl::StrCat("rename to ", file, ": ", ec.message())));
  }
  if (!summary.ok()) return Fail(summary.status());
  std::cout << "Snapshot saved at " << file << " (revision " << summary->header.revision() << ", "
            << summary->trailer.keys() << " keys, " << summary->size << " bytes)\n";
  return 0;
}

struct RestoreFlags {
  std::string file, name = "default", data_dir, initial_cluster, token = "etcd-cluster";
  std::string advertise_peer_urls = "http://127.0.0.1:2380";
  int64_t bump_revision = 0;
  bool mark_compacted = false;
};

int RestoreCmd(RestoreFlags f) {
  if (f.data_dir.empty()) f.data_dir = f.name + ".chainfire";
  if (f.initial_cluster.empty()) f.initial_cluster = f.name + "=" + f.advertise_peer_urls;
  auto spec = cf::server::ParseInitialCluster(f.initial_cluster, f.token);
  if (!spec.ok()) return Fail(spec.status());
  const cf::server::MemberSpec* self = spec->Find(f.name);
  if (self == nullptr) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "--name ", f.name, " does not appear in --initial-cluster ", f.initial_cluster)));
  }
  auto urls = cf::server::ParseUrls(f.advertise_peer_urls, "--initial-advertise-peer-urls");
  if (!urls.ok()) return Fail(urls.status());
  for (const std::string& u : *urls) {
    if (std::find(self->peer_urls.begin(), self->peer_urls.end(), u) == self->peer_urls.end()) {
      return Fail(absl::InvalidArgumentError(absl::StrCat("--initial-advertise-peer-urls ", u,
                                                          " is not listed for ", f.name,
                                                          " in --initial-cluster")));
    }
  }
  auto summary = cf::backup::VerifyFile(f.file);
  if (!summary.ok()) return Fail(summary.status());
  spec->SaltClusterId(summary->sha256_hex);
  cf::backup::RestoreOptions o;
  o.backup_path = f.file;
  o.data_dir = f.data_dir;
  o.membership = cf::server::MembershipHeader(*spec);
  o.identity_record = cf::server::IdentityRecord(*spec, self->id);
  o.cluster_salt = summary->sha256_hex;
  o.bump_revision = f.bump_revision;
  o.mark_compacted = f.mark_compacted;
  auto report = cf::backup::Restore(o);
  if (!report.ok()) return Fail(report.status());
  std::cout << "restored " << report->keys << " keys and " << report->leases << " leases into "
            << f.data_dir << " for member " << f.name << " (" << cf::server::HexId(self->id)
            << ") of cluster " << cf::server::HexId(spec->cluster_id) << " at revision "
            << report->revision << " (compact revision " << report->compact_revision << ")\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"chainfire-backup: save, verify, inspect and restore ChainFire backups"};
  app.require_subcommand(1);

  std::vector<std::string> endpoints;
  std::string save_dir, save_file;
  int timeout_s = 300;
  auto* save = app.add_subcommand("save", "Write a backup of a live cluster or a stopped member");
  save->add_option("--endpoints", endpoints, "Client URLs to fetch the backup from (first good)")
      ->delimiter(',');
  save->add_option("--data-dir", save_dir, "A stopped member's data dir (offline backup)");
  save->add_option("--timeout", timeout_s, "Seconds allowed for the whole transfer")
      ->capture_default_str();
  save->add_option("file", save_file, "The backup file to write")->required();
  ClientTlsFlags tls;
  save->add_option("--cacert", tls.cacert, "Verify the members' certificates with this CA bundle");
  save->add_option("--cert", tls.cert, "Client certificate (for --client-cert-auth members)");
  save->add_option("--key", tls.key, "Client certificate's key");
  std::string user;
  save->add_option("--user", user,
                   "name:password to sign in with (auth on: snapshots are served to root only)");

  std::string verify_file;
  auto* verify = app.add_subcommand("verify", "Check a backup's checksum and structure");
  verify->add_option("file", verify_file)->required();

  std::string inspect_file;
  auto* inspect = app.add_subcommand("inspect", "Print a verified backup's summary as JSON");
  inspect->add_option("file", inspect_file)->required();

  RestoreFlags rf;
  auto* restore =
      app.add_subcommand("restore", "Write a fresh data dir for one member from a backup");
  restore->add_option("file", rf.file)->required();
  restore->add_option("--name", rf.name, "This member's name")->capture_default_str();
  restore->add_option("--data-dir", rf.data_dir, "Data dir to create (default: <name>.chainfire)");
  restore->add_option("--initial-cluster", rf.initial_cluster, "The new static membership");
  restore->add_option("--initial-cluster-token", rf.token)->capture_default_str();
  restore->add_option("--initial-advertise-peer-urls", rf.advertise_peer_urls)
      ->capture_default_str();
  restore->add_option("--bump-revision", rf.bump_revision,
                      "Add this to the restored revision so no revision number is reused");
  restore->add_flag("--mark-compacted", rf.mark_compacted,
                    "Mark the bumped revision compacted (watchers from older revisions are "
                    "cancelled); needs --bump-revision");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (*save) return Save(endpoints, save_dir, save_file, timeout_s, tls, user);
  if (*verify || *inspect) {
    const std::string& file = *verify ? verify_file : inspect_file;
    auto summary = cf::backup::VerifyFile(file);
    if (!summary.ok()) return Fail(summary.status());
    if (*verify) {
      std::cout << file << ": OK (format " << cf::backup::kFormatVersion << ", revision "
                << summary->header.revision() << ", " << summary->trailer.keys() << " keys, "
                << summary->trailer.leases() << " leases, sha256 " << summary->sha256_hex << ")\n";
    } else {
      std::cout << cf::backup::SummaryJson(*summary) << "\n";
    }
    return 0;
  }
  return RestoreCmd(rf);
}
