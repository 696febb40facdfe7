#include "chainfire/transport/peer_transport.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "chainfire/common/sockets.h"
#include "chainfire/common/thread_name.h"
#include "grpcpp/grpcpp.h"
#include "spdlog/spdlog.h"

namespace chainfire::transport {

namespace {
constexpr size_t kMaxQueue = 8192;
constexpr int kMaxReconnectMs = 250;
constexpr size_t kMaxBatch = 512;
constexpr int kMaxMessageBytes = 512 << 20;
constexpr size_t kSnapshotChunk = 1 << 20;
constexpr auto kSnapshotDeadline = std::chrono::minutes(30);
}  // namespace

grpc::ChannelArguments PeerChannelArguments() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  // A restarted peer is found within a quarter second (its first read waits for the leader's
  // stream to reach it); reconnecting on loopback or a LAN costs next to nothing.
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, kMaxReconnectMs);
  return args;
}

class PeerTransport::Service : public peer::Peer::CallbackService {
 public:
  explicit Service(PeerTransport* t) : t_(t) {}

  grpc::ServerReadReactor<peer::MessageBatch>* Stream(grpc::CallbackServerContext* ctx,
                                                      peer::StreamAck*) override {
    class Reader : public grpc::ServerReadReactor<peer::MessageBatch> {
     public:
      Reader(PeerTransport* t, std::string remote) : t_(t), remote_(std::move(remote)) {
        StartRead(&batch_);
      }
      void OnReadDone(bool ok) override {
        if (!ok) {
          Finish(grpc::Status::OK);
          return;
        }
        std::vector<raft::Message> msgs;
        const size_t bytes = batch_.ByteSizeLong();
        t_->intake_->Take(std::move(batch_), bytes, remote_, &msgs);
        if (!msgs.empty() && !t_->stopping_) t_->deliver_(std::move(msgs));
        batch_.Clear();
        StartRead(&batch_);
      }
      void OnDone() override { delete this; }

     private:
      PeerTransport* t_;
      const std::string remote_;  // the peer's address, for the log
      peer::MessageBatch batch_;
    };
    return new Reader(t_, HandedOverAddress(ctx->peer()));
  }

  grpc::ServerReadReactor<peer::SnapshotChunk>* SendSnapshot(grpc::CallbackServerContext*,
                                                             peer::SnapshotAck*) override {
    return new SnapshotReceiver(t_);
  }

  // Writes the chunks to "<receive dir>/<from>-<term>-<index>-<n>.part"; at the end fsyncs,
  // verifies, renames to ".snap" and delivers the kSnap message naming the file.
  class SnapshotReceiver : public grpc::ServerReadReactor<peer::SnapshotChunk> {
   public:
    explicit SnapshotReceiver(PeerTransport* t) : t_(t) { StartRead(&chunk_); }
    void OnReadDone(bool ok) override {
      if (!ok) {
        t_->snapshot_checks_.Submit([this] { Complete(); });
        return;
      }
      if (file_ == nullptr) {
        if (!Begin()) return;
      }
      if (!chunk_.data().empty() && std::fwrite(chunk_.data().data(), 1, chunk_.data().size(),
                                                file_) != chunk_.data().size()) {
        Fail(grpc::StatusCode::INTERNAL, "writing the snapshot file failed");
        return;
      }
      chunk_.Clear();
      StartRead(&chunk_);
    }
    void OnDone() override {
      if (file_ != nullptr) std::fclose(file_);
      std::error_code ec;
      if (!part_.empty()) std::filesystem::remove(part_, ec);
      delete this;
    }

   private:
    bool Begin() {
      if (chunk_.cluster_id() != t_->cluster_id_ || !chunk_.has_message() ||
          chunk_.message().to() != t_->self_id_ || t_->receive_dir_.empty() ||
          !t_->snapshot_verify_) {
        Fail(grpc::StatusCode::FAILED_PRECONDITION, "snapshot not for this member");
        return false;
      }
      if (absl::Status s = ValidatePeerMessage(chunk_.message(), t_->self_id_, t_->members_);
          !s.ok() || chunk_.message().type() != static_cast<uint32_t>(raft::MessageType::kSnap)) {
        Fail(grpc::StatusCode::INVALID_ARGUMENT,
             s.ok() ? std::string("not a snapshot message") : std::string(s.message()));
        return false;
      }
      message_ = FromProto(chunk_.message());
      std::error_code ec;
      std::filesystem::create_directories(t_->receive_dir_, ec);
      const std::string base =
          absl::StrCat(t_->receive_dir_, "/", absl::Hex(message_.from), "-", message_.term, "-",
                       message_.snapshot ? message_.snapshot->meta.index : 0, "-",
                       t_->received_snapshots_.fetch_add(1));
      part_ = base + ".part";
      final_ = base + ".snap";
      started_ = std::chrono::steady_clock::now();
      file_ = std::fopen(part_.c_str(), "wb");
      if (file_ == nullptr) {
        Fail(grpc::StatusCode::INTERNAL, "cannot create the snapshot file");
        return false;
      }
      return true;
    }
    void Complete() {
      if (file_ == nullptr) {
        Fail(grpc::StatusCode::INVALID_ARGUMENT, "empty snapshot stream");
        return;
      }
      const bool synced = std::fflush(file_) == 0 && ::fsync(fileno(file_)) == 0;
      std::fclose(file_);
      file_ = nullptr;
      absl::Status s = synced ? t_->snapshot_verify_(part_)
                              : absl::InternalError("fsync of the snapshot file failed");
      std::error_code ec;
      if (s.ok()) {
        std::filesystem::rename(part_, final_, ec);
        if (ec) s = absl::InternalError(ec.message());
      }
      if (s.ok()) {
        t_->snapshot_save_seconds_->Observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
      }
      if (!s.ok() || !message_.snapshot || t_->stopping_) {
        spdlog::warn("refusing a snapshot from {:x}: {}", message_.from, s.ToString());
        Fail(grpc::StatusCode::DATA_LOSS, std::string(s.message()));
        return;
      }
      part_.clear();
      spdlog::info("received a snapshot at index {} from {:x} ({})", message_.snapshot->meta.index,
                   message_.from, final_);
      message_.snapshot->data = final_;
      std::vector<raft::Message> msgs;
      msgs.push_back(std::move(message_));
      t_->deliver_(std::move(msgs));
      Finish(grpc::Status::OK);
    }
    void Fail(grpc::StatusCode code, const std::string& why) {
      if (file_ != nullptr) std::fclose(file_);
      file_ = nullptr;
      Finish(grpc::Status(code, why));
    }

    PeerTransport* t_;
    peer::SnapshotChunk chunk_;
    raft::Message message_;
    std::FILE* file_ = nullptr;
    std::string part_, final_;
    std::chrono::steady_clock::time_point started_;  // the first chunk
  };

  grpc::ServerUnaryReactor* Probe(grpc::CallbackServerContext* ctx, const peer::ProbeRequest* req,
                                  peer::ProbeResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    if (!t_->members_.contains(req->from()) &&
        t_->unknown_probes_.fetch_add(1, std::memory_order_relaxed) % 100 == 0) {
      spdlog::warn(
          "probe from {:x} (cluster {:x}), which is not a member of cluster {:x}, at {}: check "
          "its --initial-cluster",
          req->from(), req->cluster_id(), t_->cluster_id_, HandedOverAddress(ctx->peer()));
    }
    *resp = t_->probe_(*req);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* LeaseKeepAlive(grpc::CallbackServerContext* ctx,
                                           const etcdserverpb::LeaseKeepAliveRequest* req,
                                           etcdserverpb::LeaseKeepAliveResponse* resp) override {
    return Answer(ctx, t_->keep_alive_, *req, resp);
  }

  grpc::ServerUnaryReactor* LeaseTimeToLive(grpc::CallbackServerContext* ctx,
                                            const etcdserverpb::LeaseTimeToLiveRequest* req,
                                            etcdserverpb::LeaseTimeToLiveResponse* resp) override {
    return Answer(ctx, t_->ttl_, *req, resp);
  }

  // Runs a lease handler (unset: not ready yet) and finishes the call with its answer.
  template <typename Handler, typename Request, typename Response>
  static grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* ctx, const Handler& handler,
                                          const Request& req, Response* resp) {
    auto* reactor = ctx->DefaultReactor();
    if (!handler) {
      reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "not ready"));
      return reactor;
    }
    auto r = handler(req);
    if (r.ok()) {
      *resp = std::move(*r);
      reactor->Finish(grpc::Status::OK);
    } else {
      reactor->Finish(grpc::Status(static_cast<grpc::StatusCode>(r.status().code()),
                                   std::string(r.status().message())));
    }
    return reactor;
  }

  PeerTransport* t_;
};

// One open message stream to a peer. Lives until gRPC's OnDone; a hold keeps OnDone away
// while the transport may still start a write on it (released by Close).
class PeerTransport::Stream : public grpc::ClientWriteReactor<peer::MessageBatch> {
 public:
  Stream(PeerTransport* t, Peer* p) : t_(t), p_(p) {
    p->stub->async()->Stream(&context_, &ack_, this);
    AddHold();
  }
  void OnWriteDone(bool ok) override { t_->OnWriteDone(p_, this, ok); }
  void OnDone(const grpc::Status&) override {
    PeerTransport* t = t_;
    delete this;
    t->OnStreamDone();
  }
  // Ends the stream for good (with `cancel`, at once); called once, with no write in flight.
  void Close(bool cancel) {
    if (cancel) context_.TryCancel();
    RemoveHold();
  }
  void Cancel() { context_.TryCancel(); }
  peer::MessageBatch batch;  // the write in flight (written only while none is)

 private:
  PeerTransport* t_;
  Peer* p_;
  grpc::ClientContext context_;
  peer::StreamAck ack_;
};

PeerTransport::PeerTransport(uint64_t cluster_id, uint64_t self_id,
                             std::map<uint64_t, std::string> peers, Deliver deliver,
                             ProbeHandler probe,
                             std::shared_ptr<grpc::ChannelCredentials> credentials)
    : cluster_id_(cluster_id),
      self_id_(self_id),
      deliver_(std::move(deliver)),
      probe_(std::move(probe)),
      service_(std::make_unique<Service>(this)) {
  metrics::Registry& r = metrics::Default();
  static auto* sent = r.AddCounter("etcd_network_peer_sent_bytes_total",
                                   "The total number of bytes sent to peers.", {"To"});
  static auto* received = r.AddCounter("etcd_network_peer_received_bytes_total",
                                       "The total number of bytes received from peers.", {"From"});
  static auto* failures = r.AddCounter("etcd_network_peer_sent_failures_total",
                                       "The total number of send failures from peers.", {"To"});
  static auto* heartbeats = r.AddCounter(
      "etcd_server_heartbeat_send_failures_total",
      "The total number of leader heartbeat send failures (likely overloaded from slow disk).");
  heartbeat_failures_ = heartbeats->Get();
  static auto* snapshot_save =
      r.AddHistogram("etcd_snap_db_save_total_duration_seconds",
                     "The total latency distributions of save called by snapshot.",
                     metrics::ExponentialBuckets(0.1, 2, 10));
  snapshot_save_seconds_ = snapshot_save->Get();
  static auto* rtt = r.AddHistogram("etcd_network_peer_round_trip_time_seconds",
                                    "Round-Trip-Time histogram between peers",
                                    metrics::ExponentialBuckets(0.0001, 2, 14), {"To"});
  members_.insert(self_id);
  std::map<uint64_t, metrics::Counter*> received_bytes;
  for (auto& [id, address] : peers) {
    members_.insert(id);
    if (id == self_id) continue;
    const std::string hex = absl::StrCat(absl::Hex(id));
    received_bytes[id] = received->With({hex});
    auto p = std::make_unique<Peer>();
    p->id = id;
    p->address = address;
    p->sent_bytes = sent->With({hex});
    p->sent_failures = failures->With({hex});
    p->rtt = rtt->With({hex});
    p->channel = DialPeer(address, credentials);
    Peer* raw = p.get();
    peers_[id] = std::move(p);
    raw->stub = peer::Peer::NewStub(raw->channel);
    raw->thread = std::thread([this, raw] {
      SetThreadName("cf-peer-conn");
      ConnectLoop(raw);
    });
  }
  intake_ =
      std::make_unique<MessageIntake>(cluster_id, self_id, members_, std::move(received_bytes));
  prober_ = std::thread([this] {
    SetThreadName("cf-peer-probe");
    ProbeLoop();
  });
}

void PeerTransport::ProbeLoop() {
  std::map<uint64_t, std::unique_ptr<peer::Peer::Stub>> stubs;
  for (auto& [id, p] : peers_) stubs[id] = peer::Peer::NewStub(p->channel);
  std::unique_lock<std::mutex> l(prober_mu_);
  while (!prober_cv_.wait_for(l, kProbeInterval, [this] { return stopping_.load(); })) {
    l.unlock();
    for (auto& [id, p] : peers_) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
      peer::ProbeRequest req;
      req.set_cluster_id(cluster_id_);
      req.set_from(self_id_);
      peer::ProbeResponse resp;
      const auto start = std::chrono::steady_clock::now();
      if (stubs[id]->Probe(&ctx, req, &resp).ok()) {
        p->rtt->Observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        // Logged when it starts and when it ends, not at every probe.
        const uint64_t foreign = resp.cluster_id() != cluster_id_ ? resp.cluster_id() : 0;
        if (foreign != p->foreign_cluster_seen) {
          if (foreign != 0) {
            spdlog::warn(
                "the member at {} (configured as {:x}) answers as cluster {:x}, not ours {:x}: "
                "its messages are dropped; check the peer URLs and --initial-cluster-token",
                p->address, id, foreign, cluster_id_);
          } else {
            spdlog::info("the member at {} ({:x}) answers as cluster {:x} again", p->address, id,
                         cluster_id_);
          }
          p->foreign_cluster_seen = foreign;
        }
      }
    }
    l.lock();
  }
}

PeerTransport::~PeerTransport() { Stop(); }

std::shared_ptr<grpc::Channel> PeerTransport::ChannelTo(uint64_t id) const {
  auto it = peers_.find(id);
  return it == peers_.end() ? nullptr : it->second->channel;
}

std::shared_ptr<grpc::Channel> DialPeer(const std::string& address,
                                        std::shared_ptr<grpc::ChannelCredentials> credentials) {
  return grpc::CreateCustomChannel(address,
                                   credentials ? credentials : grpc::InsecureChannelCredentials(),
                                   PeerChannelArguments());
}

grpc::Service* PeerTransport::service() { return service_.get(); }

absl::Status PeerTransport::StartLinks(
    const std::vector<std::string>& listen,
    std::function<void(int fd, const std::string& peer)> grpc_handoff) {
  PeerLinks::Options o;
  o.cluster_id = cluster_id_;
  o.self_id = self_id_;
  o.listen = listen;
  o.other_connection = std::move(grpc_handoff);
  o.intake = intake_.get();
  o.heartbeat_failures = heartbeat_failures_;
  auto links = PeerLinks::Listen(std::move(o));
  if (!links.ok()) return links.status();
  std::map<uint64_t, PeerLinks::PeerOptions> peers;
  for (auto& [id, p] : peers_) peers[id] = {p->address, p->sent_bytes, p->sent_failures};
  (*links)->Start(std::move(peers));
  links_ = std::move(*links);
  return absl::OkStatus();
}

void PeerTransport::Stop() {
  if (stopping_.exchange(true)) return;
  snapshot_checks_.Stop();  // what is queued sees stopping_ and refuses its snapshot
  if (links_) links_->Stop();
  { std::lock_guard<std::mutex> l(prober_mu_); }
  prober_cv_.notify_all();
  if (prober_.joinable()) prober_.join();
  std::vector<Stream*> idle;
  for (auto& [id, p] : peers_) {
    std::lock_guard<std::mutex> l(p->mu);
    if (p->stream != nullptr) {
      // A stream with a write in flight is closed by that write's completion (which sees
      // stopping_); an idle one here.
      p->stream->Cancel();
      if (!p->writing) idle.push_back(p->stream);
      p->stream = nullptr;
      p->writing = false;
    }
    if (p->snapshot_context) p->snapshot_context->TryCancel();
    p->cv.notify_all();
  }
  for (Stream* s : idle) s->Close(/*cancel=*/true);
  for (auto& [id, p] : peers_) {
    if (p->thread.joinable()) p->thread.join();
    if (p->snapshot_thread.joinable()) p->snapshot_thread.join();
  }
  // Every stream's OnDone has run (they refer to this transport).
  std::unique_lock<std::mutex> l(streams_mu_);
  streams_cv_.wait(l, [this] { return live_streams_ == 0; });
}

void PeerTransport::SendSnapshot(Peer* p, raft::Message m) {
  std::lock_guard<std::mutex> l(p->mu);
  if (p->snapshot_running || stopping_ || !snapshot_source_) return;
  p->snapshot_running = true;
  if (p->snapshot_thread.joinable()) p->snapshot_thread.join();  // finished: flag was clear
  p->snapshot_thread = std::thread([this, p, m = std::move(m)] {
    SetThreadName("cf-snap-send");
    auto path = snapshot_source_(m);
    absl::Status s = path.status();
    if (path.ok()) {
      s = StreamSnapshot(p, m, *path);
      std::error_code ec;
      std::filesystem::remove(*path, ec);
    }
    if (s.ok()) {
      spdlog::info("sent a snapshot at index {} to {:x}", m.snapshot->meta.index, p->id);
    } else {
      spdlog::warn("sending a snapshot to {:x} failed: {}", p->id, s.ToString());
    }
    std::lock_guard<std::mutex> l(p->mu);
    p->snapshot_running = false;
  });
}

absl::Status PeerTransport::StreamSnapshot(Peer* p, const raft::Message& m,
                                           const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return absl::InternalError(absl::StrCat("cannot open ", path));
  auto stub = peer::Peer::NewStub(p->channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + kSnapshotDeadline);
  {
    std::lock_guard<std::mutex> l(p->mu);
    if (stopping_) {
      std::fclose(f);
      return absl::CancelledError("stopping");
    }
    p->snapshot_context = &ctx;
  }
  peer::SnapshotAck ack;
  auto writer = stub->SendSnapshot(&ctx, &ack);
  peer::SnapshotChunk chunk;
  chunk.set_cluster_id(cluster_id_);
  raft::Message header = m;
  header.snapshot->data.clear();
  *chunk.mutable_message() = ToProto(header);
  bool ok = writer->Write(chunk);
  chunk.Clear();
  std::string buf(kSnapshotChunk, '\0');
  while (ok) {
    const size_t n = std::fread(buf.data(), 1, buf.size(), f);
    if (n == 0) break;
    chunk.set_data(buf.data(), n);
    ok = writer->Write(chunk);
  }
  std::fclose(f);
  if (ok) writer->WritesDone();
  grpc::Status st = writer->Finish();
  {
    std::lock_guard<std::mutex> l(p->mu);
    p->snapshot_context = nullptr;
  }
  if (!st.ok()) return absl::UnavailableError(st.error_message());
  return ok ? absl::OkStatus() : absl::UnavailableError("snapshot stream broken");
}

void PeerTransport::Send(raft::Message m) {
  auto it = peers_.find(m.to);
  if (it == peers_.end()) return;
  Peer* p = it->second.get();
  if (m.type == raft::MessageType::kSnap && m.snapshot) {
    SendSnapshot(p, std::move(m));
    return;
  }
  if (links_ && !links_->Legacy(m.to)) {
    links_->Send(std::move(m));
    return;
  }
  std::lock_guard<std::mutex> l(p->mu);
  if (p->queue.size() >= kMaxQueue) p->queue.pop_front();
  p->queue.push_back(std::move(m));
}

void PeerTransport::Flush() {
  if (links_) links_->Flush();
  for (auto& [id, p] : peers_) MaybeStartWrite(p.get());
}

void PeerTransport::FillBatch(Peer* p, peer::MessageBatch* batch) {
  batch->Clear();
  batch->set_cluster_id(cluster_id_);
  batch->set_from(self_id_);
  while (!p->queue.empty() && batch->messages_size() < static_cast<int>(kMaxBatch)) {
    *batch->add_messages() = ToProto(std::move(p->queue.front()));
    p->queue.pop_front();
  }
}

void PeerTransport::MaybeStartWrite(Peer* p) {
  Stream* s = nullptr;
  {
    std::lock_guard<std::mutex> l(p->mu);
    if (p->queue.empty()) return;
    if (p->stream == nullptr) {
      p->cv.notify_one();  // the connect thread opens one
      return;
    }
    if (p->writing) return;  // its completion sends what queued meanwhile
    p->writing = true;
    s = p->stream;
    FillBatch(p, &s->batch);
  }
  // Only the thread that set `writing` touches the stream until the write completes; the hold
  // keeps it alive.
  p->sent_bytes->Add(s->batch.ByteSizeLong());
  s->StartWrite(&s->batch);
}

void PeerTransport::OnWriteDone(Peer* p, Stream* s, bool ok) {
  bool close = false;
  {
    std::lock_guard<std::mutex> l(p->mu);
    if (ok && p->stream == s && !stopping_) {
      p->broke = false;
      if (!p->queue.empty()) {
        FillBatch(p, &s->batch);
      } else {
        p->writing = false;
        return;
      }
    } else {
      if (!ok && !stopping_) {
        // The stream broke (peer down or restarting): this batch is lost; Raft retransmits.
        p->sent_failures->Add();
        for (const peer::RaftMessage& m : s->batch.messages()) {
          if (m.type() == static_cast<uint32_t>(raft::MessageType::kHeartbeat)) {
            heartbeat_failures_->Add();
          }
        }
        p->broke = true;
      }
      if (p->stream == s) {
        p->stream = nullptr;
        p->writing = false;
        p->cv.notify_one();  // reopen
      }
      close = true;
    }
  }
  if (close) {
    s->Close(/*cancel=*/true);
    return;
  }
  p->sent_bytes->Add(s->batch.ByteSizeLong());
  s->StartWrite(&s->batch);
}

void PeerTransport::OnStreamDone() {
  std::lock_guard<std::mutex> l(streams_mu_);
  if (--live_streams_ == 0) streams_cv_.notify_all();
}

void PeerTransport::ConnectLoop(Peer* p) {
  int backoff_ms = 50;
  std::unique_lock<std::mutex> l(p->mu);
  while (!stopping_) {
    p->cv.wait(l, [&] { return stopping_ || (p->stream == nullptr && !p->queue.empty()); });
    if (stopping_) break;
    if (p->broke) {
      // Not too eager after a failure: wait, then retry (messages queue up meanwhile, the
      // oldest dropped beyond the bound).
      p->cv.wait_for(l, std::chrono::milliseconds(backoff_ms), [&] { return stopping_.load(); });
      if (stopping_) break;
      backoff_ms = std::min(backoff_ms * 2, kMaxReconnectMs);
    } else {
      backoff_ms = 50;
    }
    {
      std::lock_guard<std::mutex> sl(streams_mu_);
      ++live_streams_;
    }
    // Started under p->mu so no write from another thread races StartCall (gRPC runs no
    // reaction inline, so none waits for the lock here).
    auto* s = new Stream(this, p);
    s->StartCall();
    p->stream = s;
    p->writing = true;
    FillBatch(p, &s->batch);
    l.unlock();
    p->sent_bytes->Add(s->batch.ByteSizeLong());
    s->StartWrite(&s->batch);
    l.lock();
  }
}

absl::StatusOr<peer::ProbeResponse> ProbePeer(
    const std::string& address, uint64_t cluster_id, uint64_t self_id, int timeout_ms,
    std::shared_ptr<grpc::ChannelCredentials> credentials) {
  auto stub = peer::Peer::NewStub(DialPeer(address, credentials));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  peer::ProbeRequest req;
  req.set_cluster_id(cluster_id);
  req.set_from(self_id);
  peer::ProbeResponse resp;
  grpc::Status s = stub->Probe(&ctx, req, &resp);
  if (!s.ok()) return absl::UnavailableError(s.error_message());
  return resp;
}

}  // namespace chainfire::transport
