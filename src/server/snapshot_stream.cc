// Maintenance.Snapshot: streams a logical backup (docs/backup-format.md).
#include <atomic>
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "chainfire/backup/state_dump.h"
#include "chainfire/server/services.h"
#include "spdlog/spdlog.h"

namespace chainfire::server {

grpc::Status ToGrpc(const absl::Status& s);

namespace {
constexpr size_t kChunk = 32 * 1024;  // etcd's chunk size
std::atomic<uint64_t> next_stream{0};
}  // namespace

// Writes the backup on a helper thread, then sends it chunk by chunk from OnWriteDone.
class MaintenanceService::SnapshotStream
    : public grpc::ServerWriteReactor<etcdserverpb::SnapshotResponse> {
 public:
  SnapshotStream(NodeHost* host, storage::Engine* engine) : host_(host), engine_(engine) {}

  // Answers with `s` and sends nothing (a caller without the root role).
  void Refuse(const absl::Status& s) { Finish(ToGrpc(s)); }

  // Helper thread.
  void Prepare() {
    const std::filesystem::path dir = std::filesystem::path(engine_->dir()) / "backup-tmp";
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    path_ = (dir / absl::StrCat("snapshot-", next_stream.fetch_add(1), ".cfb")).string();
    const rocksdb::Snapshot* snap = engine_->db()->GetSnapshot();
    backup::BackupHeader header = MembershipHeader(host_->cluster_spec());
    header.set_chainfire_version(kChainfireVersion);
    auto summary = backup::WriteBackupFile(path_, [&](backup::BackupWriter* w) {
      return backup::WriteLogicalBackup(engine_, snap, header, w);
    });
    engine_->db()->ReleaseSnapshot(snap);
    if (!summary.ok()) {
      spdlog::warn("snapshot failed: {}", summary.status().ToString());
      Finish(ToGrpc(summary.status()));
      return;
    }
    spdlog::info("sending snapshot: {} keys, {} bytes", summary->trailer.keys(), summary->size);
    total_ = summary->size;
    file_ = std::fopen(path_.c_str(), "rb");
    if (file_ == nullptr) {
      Finish(grpc::Status(grpc::StatusCode::INTERNAL, "cannot reopen the snapshot file"));
      return;
    }
    host_->FillHeader(resp_.mutable_header());
    SendNext();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "snapshot stream broken"));
      return;
    }
    resp_.clear_header();
    SendNext();
  }

  void OnDone() override {
    if (file_ != nullptr) std::fclose(file_);
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove(path_, ec);
    delete this;
  }

 private:
  void SendNext() {
    std::string* blob = resp_.mutable_blob();
    blob->resize(kChunk);
    const size_t n = std::fread(blob->data(), 1, kChunk, file_);
    blob->resize(n);
    sent_ += n;
    if (n == 0) {
      Finish(sent_ == total_ ? grpc::Status::OK
                             : grpc::Status(grpc::StatusCode::INTERNAL, "snapshot file short"));
      return;
    }
    resp_.set_remaining_bytes(total_ - sent_);
    StartWrite(&resp_);
  }

  NodeHost* host_;
  storage::Engine* engine_;
  std::string path_;
  std::FILE* file_ = nullptr;
  uint64_t total_ = 0, sent_ = 0;
  etcdserverpb::SnapshotResponse resp_;
};

grpc::ServerWriteReactor<etcdserverpb::SnapshotResponse>* MaintenanceService::Snapshot(
    grpc::CallbackServerContext* ctx, const etcdserverpb::SnapshotRequest*) {
  auto* stream = new SnapshotStream(host_, engine_);
  if (absl::Status a = CheckAdmin(ctx); !a.ok()) {
    stream->Refuse(a);
    return stream;
  }
  helpers_.Submit([stream] { stream->Prepare(); });
  return stream;
}

}  // namespace chainfire::server
