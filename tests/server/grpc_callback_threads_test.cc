#include "chainfire/server/grpc_callback_threads.h"

#include <chrono>
#include <future>
#include <memory>
#include <string>

#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace chainfire::server {
namespace {

constexpr char kPool[] = "nexting_thread";

// A callback-API service that answers any method with the message it got.
class Echo : public grpc::CallbackGenericService {
 public:
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext*) override {
    class Reactor : public grpc::ServerGenericBidiReactor {
     public:
      Reactor() { StartRead(&message_); }
      void OnReadDone(bool ok) override {
        if (!ok) {
          Finish(grpc::Status::OK);
          return;
        }
        StartWriteAndFinish(&message_, grpc::WriteOptions(), grpc::Status::OK);
      }
      void OnDone() override { delete this; }

     private:
      grpc::ByteBuffer message_;
    };
    return new Reactor;
  }
};

// A started callback server on a port of its own, and a real TCP channel to it.
struct EchoServer {
  EchoServer() {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterCallbackGenericService(&echo);
    server = b.BuildAndStart();
  }
  ~EchoServer() { server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5)); }

  // One unary call over TCP; the answer's text, or the error's.
  std::string Call(const std::string& text) {
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                       grpc::InsecureChannelCredentials());
    grpc::GenericStub stub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Slice slice(text);
    grpc::ByteBuffer request(&slice, 1), response;
    std::promise<grpc::Status> done;
    stub.UnaryCall(&ctx, "/test.Echo/Say", grpc::StubOptions(), &request, &response,
                   [&done](grpc::Status s) { done.set_value(s); });
    std::future<grpc::Status> f = done.get_future();
    if (f.wait_for(std::chrono::seconds(15)) != std::future_status::ready) return "no answer";
    grpc::Status s = f.get();
    if (!s.ok()) return "error: " + s.error_message();
    std::vector<grpc::Slice> slices;
    if (!response.Dump(&slices).ok()) return "bad response";
    std::string out;
    for (const grpc::Slice& sl : slices)
      out.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
    return out;
  }

  Echo echo;
  int port = 0;
  std::unique_ptr<grpc::Server> server;
};

TEST(CallbackThreadHold, HoldsAllButOneOfThePoolAndCallsStillRunUntilRelease) {
  EchoServer s;
  ASSERT_NE(s.server, nullptr);
  ASSERT_EQ(s.Call("before"), "before");
  auto hold = CallbackThreadHold::Hold(s.server.get(), 1, absl::Seconds(10));
  const int pool = hold->pool_threads();
  ASSERT_GE(pool, 2) << "gRPC 1.51 starts at least two callback threads";
  EXPECT_EQ(pool, CountThreadsNamed(kPool));
  EXPECT_EQ(hold->held(), pool - 1);
  // The one left polls and runs every completion: calls over TCP are still answered, many.
  for (int i = 0; i < 20; ++i)
    ASSERT_EQ(s.Call("call " + std::to_string(i)), "call " + std::to_string(i));
  hold->Release();
  EXPECT_EQ(hold->held(), 0);
  EXPECT_EQ(s.Call("after"), "after");
  hold->Release();  // idempotent
}

TEST(CallbackThreadHold, HoldsNothingWhenKeepingThePoolOrMore) {
  EchoServer s;
  ASSERT_NE(s.server, nullptr);
  auto hold = CallbackThreadHold::Hold(s.server.get(), 16, absl::Seconds(10));
  EXPECT_GE(hold->pool_threads(), 2);  // seen, once they had all named themselves
  EXPECT_EQ(hold->held(), 0);
  EXPECT_EQ(s.Call("x"), "x");
}

TEST(CallbackThreadHold, DestructionReleasesSoTheServerShutsDown) {
  EchoServer s;
  ASSERT_NE(s.server, nullptr);
  {
    auto hold = CallbackThreadHold::Hold(s.server.get(), 1, absl::Seconds(10));
    EXPECT_GE(hold->held(), 1);
  }
  EXPECT_EQ(s.Call("y"), "y");
}

TEST(CountThreadsNamed, CountsThisProcesssThreadsByName) {
  EXPECT_EQ(CountThreadsNamed("no-such-thread-"), 0);
  EXPECT_GE(CountThreadsNamed("server_test"), 1);  // the main thread keeps the binary's name
}

}  // namespace
}  // namespace chainfire::server
