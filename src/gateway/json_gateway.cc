// The gateway's calls: one gRPC call on the in-process channel per HTTP request.
#include "chainfire/gateway/json_gateway.h"

#include <deque>

#include "etcd/rpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/client_callback.h"

namespace chainfire::gateway {
namespace {

grpc::ByteBuffer Serialize(const google::protobuf::Message& m) {
  grpc::Slice slice(m.SerializeAsString());
  return grpc::ByteBuffer(&slice, 1);
}

std::unique_ptr<google::protobuf::Message> Deserialize(const google::protobuf::Descriptor* type,
                                                       const grpc::ByteBuffer& buffer) {
  std::unique_ptr<google::protobuf::Message> m(
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(type)->New());
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return nullptr;
  std::string bytes;
  for (const grpc::Slice& s : slices)
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  if (!m->ParseFromString(bytes)) return nullptr;
  return m;
}

http::Response JsonResponse(int status, std::string body) {
  http::Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  // etcd's client port answers cross-origin requests (its default --cors is "*").
  r.headers = {{"Access-Control-Allow-Origin", "*"},
               {"Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE"},
               {"Access-Control-Allow-Headers", "accept, content-type, authorization"}};
  return r;
}

void PrepareContext(const http::Request& request, grpc::ClientContext* ctx) {
  if (const std::string* token = request.Header("Authorization")) {
    ctx->AddMetadata("authorization", *token);
  }
  ctx->AddMetadata(kGatewayPeerMetadata, request.peer);
}

// Lets an Exchange's OnClose cancel a call that may already have ended.
struct Canceller {
  std::mutex mu;
  grpc::ClientContext* ctx = nullptr;  // guarded by mu; null once the call is done
  void Cancel() {
    std::lock_guard lock(mu);
    if (ctx) ctx->TryCancel();
  }
  void Done() {
    std::lock_guard lock(mu);
    ctx = nullptr;
  }
};

struct UnaryCall {
  grpc::ClientContext ctx;
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;
  std::shared_ptr<Canceller> canceller = std::make_shared<Canceller>();
};

// Watch, LeaseKeepAlive, Snapshot: writes the requests (then half-closes, except for a watch),
// relays each answer as one `{"result":...}` line of a chunked response.
class StreamCall : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  StreamCall(JsonGateway* gateway, const Route& route, std::shared_ptr<http::Exchange> exchange,
             std::vector<std::unique_ptr<google::protobuf::Message>> requests)
      : gateway_(gateway), route_(route), exchange_(std::move(exchange)) {
    for (const auto& r : requests) requests_.push_back(Serialize(*r));
    canceller_->ctx = &ctx_;
  }

  void Start(grpc::GenericStub* stub, const http::Request& request) {
    PrepareContext(request, &ctx_);
    std::weak_ptr<Canceller> weak = canceller_;
    exchange_->OnClose([weak] {
      if (auto c = weak.lock()) c->Cancel();
    });
    stub->PrepareBidiStreamingCall(&ctx_, route_.grpc_method, grpc::StubOptions(), this);
    WriteNext();
    StartRead(&response_);
    StartCall();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return;
    requests_.pop_front();
    WriteNext();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended: OnDone follows
    auto message = Deserialize(route_.method->output_type(), response_);
    if (!message) {
      canceller_->Cancel();
      return;
    }
    if (!started_) {
      started_ = true;
      exchange_->StartStream(200, "application/json");
    }
    exchange_->Send("{\"result\":" + ToJson(*message) + "}\n");
    if (route_.kind == CallKind::kWatch) {
      const auto& w = static_cast<const etcdserverpb::WatchResponse&>(*message);
      // A watcher compacted away is over: end the stream so the client starts again (Patroni
      // rebuilds its cache then; an open stream would leave it stale).
      if (w.canceled() && w.compact_revision() != 0) {
        ended_by_us_ = true;
        canceller_->Cancel();
        return;
      }
    }
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    canceller_->Done();
    if (status.ok() || ended_by_us_) {
      if (!started_) exchange_->StartStream(200, "application/json");
      exchange_->End();
    } else {
      const std::string error = StreamErrorJson(status.error_code(), status.error_message());
      if (!started_)
        exchange_->StartStream(HttpStatusFromGrpcCode(status.error_code()), "application/json");
      exchange_->Send(error);
      exchange_->End();
    }
    JsonGateway* gateway = gateway_;
    delete this;
    gateway->CallEnded();
  }

 private:
  void WriteNext() {
    if (!requests_.empty()) {
      StartWrite(&requests_.front());
    } else if (route_.kind != CallKind::kWatch) {
      StartWritesDone();
    }
  }

  JsonGateway* const gateway_;
  const Route& route_;
  const std::shared_ptr<http::Exchange> exchange_;
  grpc::ClientContext ctx_;
  std::shared_ptr<Canceller> canceller_ = std::make_shared<Canceller>();
  std::deque<grpc::ByteBuffer> requests_;  // written one at a time, in order
  grpc::ByteBuffer response_;
  bool started_ = false;      // reads only
  bool ended_by_us_ = false;  // reads only
};

}  // namespace

JsonGateway::JsonGateway(std::shared_ptr<grpc::Channel> channel) : stub_(std::move(channel)) {}

JsonGateway::~JsonGateway() {
  std::unique_lock lock(mu_);
  idle_.wait(lock, [this] { return in_flight_ == 0; });
}

void JsonGateway::CallStarted() {
  std::lock_guard lock(mu_);
  ++in_flight_;
}

void JsonGateway::CallEnded() {
  std::lock_guard lock(mu_);
  if (--in_flight_ == 0) idle_.notify_all();
}

std::vector<std::pair<std::string, http::AsyncHandler>> JsonGateway::HttpRoutes() {
  auto handler = [this](http::Request request, std::shared_ptr<http::Exchange> exchange) {
    Handle(std::move(request), std::move(exchange));
  };
  return {{"/v3/", handler}, {"/v3beta/", handler}};
}

void JsonGateway::Handle(http::Request request, std::shared_ptr<http::Exchange> exchange) {
  const size_t slash = request.path.find('/', 1);
  const Route* route = FindRoute(std::string_view(request.path).substr(slash + 1));
  if (route == nullptr) {
    http::Response r;
    r.status = 404;
    r.body = "Not Found\n";
    exchange->Reply(std::move(r));
    return;
  }
  if (request.method != "POST") {
    http::Response r;
    r.status = 405;
    r.body = "Method Not Allowed\n";
    exchange->Reply(std::move(r));
    return;
  }
  if (route->kind != CallKind::kUnary) {
    auto requests =
        route->kind == CallKind::kWatch
            ? ParseJsonRequests(*route, request.body)
            : [&]() -> absl::StatusOr<std::vector<std::unique_ptr<google::protobuf::Message>>> {
      auto one = ParseJsonRequest(*route, request.body);
      if (!one.ok()) return one.status();
      std::vector<std::unique_ptr<google::protobuf::Message>> v;
      v.push_back(std::move(*one));
      return v;
    }();
    if (!requests.ok()) {
      exchange->Reply(
          JsonResponse(400, UnaryErrorJson(3, std::string(requests.status().message()))));
      return;
    }
    CallStarted();
    auto* call = new StreamCall(this, *route, exchange, std::move(*requests));
    call->Start(&stub_, request);
    return;
  }
  auto message = ParseJsonRequest(*route, request.body);
  if (!message.ok()) {
    exchange->Reply(JsonResponse(400, UnaryErrorJson(3, std::string(message.status().message()))));
    return;
  }
  auto call = std::make_shared<UnaryCall>();
  call->request = Serialize(**message);
  PrepareContext(request, &call->ctx);
  call->canceller->ctx = &call->ctx;
  std::weak_ptr<Canceller> weak = call->canceller;
  exchange->OnClose([weak] {
    if (auto c = weak.lock()) c->Cancel();
  });
  CallStarted();
  stub_.UnaryCall(
      &call->ctx, route->grpc_method, grpc::StubOptions(), &call->request, &call->response,
      [this, call, route, exchange](grpc::Status status) {
        call->canceller->Done();
        if (!status.ok()) {
          exchange->Reply(
              JsonResponse(HttpStatusFromGrpcCode(status.error_code()),
                           UnaryErrorJson(status.error_code(), status.error_message())));
        } else if (auto reply = Deserialize(route->method->output_type(), call->response)) {
          exchange->Reply(JsonResponse(200, ToJson(*reply)));
        } else {
          exchange->Reply(JsonResponse(500, UnaryErrorJson(13, "malformed response")));
        }
        CallEnded();
      });
}

}  // namespace chainfire::gateway
