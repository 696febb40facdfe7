#include "chainfire/transport/peer_transport.h"

#include <chrono>

#include "grpcpp/grpcpp.h"
#include "spdlog/spdlog.h"

namespace chainfire::transport {

namespace {
constexpr size_t kMaxQueue = 8192;
constexpr size_t kMaxBatch = 512;
constexpr int kMaxMessageBytes = 512 << 20;
}  // namespace

grpc::ChannelArguments PeerChannelArguments() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  return args;
}

peer::RaftMessage ToProto(const raft::Message& m) {
  peer::RaftMessage p;
  p.set_type(static_cast<uint32_t>(m.type));
  p.set_from(m.from);
  p.set_to(m.to);
  p.set_term(m.term);
  p.set_log_term(m.log_term);
  p.set_index(m.index);
  p.set_commit(m.commit);
  p.set_reject(m.reject);
  p.set_reject_hint(m.reject_hint);
  for (const raft::Entry& e : m.entries) {
    peer::Entry* pe = p.add_entries();
    pe->set_term(e.term);
    pe->set_index(e.index);
    pe->set_data(e.data);
  }
  if (m.snapshot) {
    p.mutable_snapshot()->set_index(m.snapshot->meta.index);
    p.mutable_snapshot()->set_term(m.snapshot->meta.term);
    p.mutable_snapshot()->set_data(m.snapshot->data);
  }
  p.set_context(m.context);
  return p;
}

raft::Message FromProto(const peer::RaftMessage& p) {
  raft::Message m;
  m.type = static_cast<raft::MessageType>(p.type());
  m.from = p.from();
  m.to = p.to();
  m.term = p.term();
  m.log_term = p.log_term();
  m.index = p.index();
  m.commit = p.commit();
  m.reject = p.reject();
  m.reject_hint = p.reject_hint();
  m.entries.reserve(p.entries_size());
  for (const peer::Entry& e : p.entries()) m.entries.push_back({e.term(), e.index(), e.data()});
  if (p.has_snapshot()) {
    m.snapshot = raft::Snapshot{{p.snapshot().index(), p.snapshot().term()}, p.snapshot().data()};
  }
  m.context = p.context();
  return m;
}

class PeerTransport::Service : public peer::Peer::CallbackService {
 public:
  explicit Service(PeerTransport* t) : t_(t) {}

  grpc::ServerReadReactor<peer::MessageBatch>* Stream(grpc::CallbackServerContext*,
                                                      peer::StreamAck*) override {
    class Reader : public grpc::ServerReadReactor<peer::MessageBatch> {
     public:
      explicit Reader(PeerTransport* t) : t_(t) { StartRead(&batch_); }
      void OnReadDone(bool ok) override {
        if (!ok) {
          Finish(grpc::Status::OK);
          return;
        }
        if (batch_.cluster_id() != t_->cluster_id_) {
          if (t_->foreign_batches_.fetch_add(1) % 100 == 0) {
            spdlog::warn("dropping messages from member {:x} of another cluster {:x} (ours {:x})",
                         batch_.from(), batch_.cluster_id(), t_->cluster_id_);
          }
        } else {
          std::vector<raft::Message> msgs;
          msgs.reserve(batch_.messages_size());
          for (const peer::RaftMessage& m : batch_.messages()) {
            if (m.to() == t_->self_id_) msgs.push_back(FromProto(m));
          }
          if (!msgs.empty() && !t_->stopping_) t_->deliver_(std::move(msgs));
        }
        batch_.Clear();
        StartRead(&batch_);
      }
      void OnDone() override { delete this; }

     private:
      PeerTransport* t_;
      peer::MessageBatch batch_;
    };
    return new Reader(t_);
  }

  grpc::ServerUnaryReactor* Probe(grpc::CallbackServerContext* ctx, const peer::ProbeRequest* req,
                                  peer::ProbeResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
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

PeerTransport::PeerTransport(uint64_t cluster_id, uint64_t self_id,
                             std::map<uint64_t, std::string> peers, Deliver deliver,
                             ProbeHandler probe)
    : cluster_id_(cluster_id),
      self_id_(self_id),
      deliver_(std::move(deliver)),
      probe_(std::move(probe)),
      service_(std::make_unique<Service>(this)) {
  for (auto& [id, address] : peers) {
    if (id == self_id) continue;
    auto p = std::make_unique<Peer>();
    p->id = id;
    p->address = address;
    Peer* raw = p.get();
    peers_[id] = std::move(p);
    raw->thread = std::thread([this, raw] { SenderLoop(raw); });
  }
}

PeerTransport::~PeerTransport() { Stop(); }

grpc::Service* PeerTransport::service() { return service_.get(); }

void PeerTransport::Stop() {
  if (stopping_.exchange(true)) return;
  for (auto& [id, p] : peers_) {
    std::lock_guard<std::mutex> l(p->mu);
    if (p->context) p->context->TryCancel();
    p->cv.notify_all();
  }
  for (auto& [id, p] : peers_) {
    if (p->thread.joinable()) p->thread.join();
  }
}

void PeerTransport::Send(raft::Message m) {
  auto it = peers_.find(m.to);
  if (it == peers_.end()) return;
  Peer* p = it->second.get();
  {
    std::lock_guard<std::mutex> l(p->mu);
    if (p->queue.size() >= kMaxQueue) p->queue.pop_front();
    p->queue.push_back(std::move(m));
  }
  p->cv.notify_one();
}

void PeerTransport::SenderLoop(Peer* p) {
  auto channel = grpc::CreateCustomChannel(p->address, grpc::InsecureChannelCredentials(),
                                           PeerChannelArguments());
  auto stub = peer::Peer::NewStub(channel);
  std::unique_ptr<grpc::ClientContext> context;
  std::unique_ptr<grpc::ClientWriter<peer::MessageBatch>> writer;
  peer::StreamAck ack;
  int backoff_ms = 50;
  while (!stopping_) {
    peer::MessageBatch batch;
    {
      std::unique_lock<std::mutex> l(p->mu);
      p->cv.wait_for(l, std::chrono::milliseconds(500),
                     [&] { return stopping_ || !p->queue.empty(); });
      if (stopping_) break;
      if (p->queue.empty()) continue;
      while (!p->queue.empty() && batch.messages_size() < static_cast<int>(kMaxBatch)) {
        *batch.add_messages() = ToProto(p->queue.front());
        p->queue.pop_front();
      }
    }
    batch.set_cluster_id(cluster_id_);
    batch.set_from(self_id_);
    if (!writer) {
      context = std::make_unique<grpc::ClientContext>();
      {
        std::lock_guard<std::mutex> l(p->mu);
        p->context = context.get();
      }
      writer = stub->Stream(context.get(), &ack);
    }
    if (writer->Write(batch)) {
      backoff_ms = 50;
      continue;
    }
    // The stream broke (peer down or restarting): drop this batch, reopen after a pause.
    writer->Finish();
    writer.reset();
    {
      std::lock_guard<std::mutex> l(p->mu);
      p->context = nullptr;
    }
    context.reset();
    std::unique_lock<std::mutex> l(p->mu);
    p->cv.wait_for(l, std::chrono::milliseconds(backoff_ms), [&] { return stopping_.load(); });
    backoff_ms = std::min(backoff_ms * 2, 1000);
  }
  if (writer) {
    writer->WritesDone();
    {
      std::lock_guard<std::mutex> l(p->mu);
      p->context = nullptr;
    }
    context->TryCancel();
    writer->Finish();
  }
}

absl::StatusOr<peer::ProbeResponse> ProbePeer(const std::string& address, uint64_t cluster_id,
                                              uint64_t self_id, int timeout_ms) {
  auto channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                           PeerChannelArguments());
  auto stub = peer::Peer::NewStub(channel);
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
