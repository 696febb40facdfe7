#include "chainfire/server/grpc_callback_threads.h"

#include <pthread.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "grpc/support/cpu.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "spdlog/spdlog.h"

namespace chainfire::server {

namespace {
constexpr char kPoolThreadName[] = "nexting_thread";  // gRPC 1.51's name for them
}  // namespace

struct CallbackThreadHold::State {
  struct Call {
    grpc::ClientContext ctx;
    grpc::ByteBuffer request, response;
  };
  std::mutex mu;
  std::condition_variable cv;
  int held = 0;      // callbacks waiting for release
  int returned = 0;  // callbacks that ran on a thread not of the pool and returned at once
  bool released = false;
  std::vector<std::unique_ptr<Call>> calls;  // each lives until the object is gone
};

int CountThreadsNamed(const char* name) {
  int n = 0;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream comm(task.path() / "comm");
    std::string line;
    if (std::getline(comm, line) && line == name) ++n;
  }
  return n;
}

std::unique_ptr<CallbackThreadHold> CallbackThreadHold::Hold(grpc::Server* server, int keep,
                                                             absl::Duration timeout) {
  std::unique_ptr<CallbackThreadHold> hold(new CallbackThreadHold);
  hold->state_ = std::make_shared<State>();
  keep = std::max(keep, 1);
  const auto deadline = std::chrono::steady_clock::now() + absl::ToChronoMilliseconds(timeout);
  // The pool starts with the first callback service's server, its threads name themselves as
  // they start, and gRPC offers no way to wait for that: look (bounded) until all are seen.
  // Holding fewer than the pool's size minus `keep` is harmless; more is never possible, as
  // only threads counted here are held.
  const int expected = std::clamp(static_cast<int>(gpr_cpu_num_cores() / 2), 2, 16);
  int pool = CountThreadsNamed(kPoolThreadName);
  while (pool < expected && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    pool = CountThreadsNamed(kPoolThreadName);
  }
  hold->pool_threads_ = pool;
  if (pool <= keep) return hold;
  hold->channel_ = server->InProcessChannel(grpc::ChannelArguments());
  grpc::GenericStub stub(hold->channel_);
  std::shared_ptr<State> state = hold->state_;
  for (int i = 0; i < pool - keep; ++i) {
    auto call = std::make_unique<State::Call>();
    grpc::Slice empty("");
    call->request = grpc::ByteBuffer(&empty, 1);  // an empty message (a default one is invalid)
    // Cancelled before it starts: it fails at once, and its callback runs on a pool thread.
    call->ctx.TryCancel();
    State::Call* c = call.get();
    {
      std::lock_guard<std::mutex> l(state->mu);
      state->calls.push_back(std::move(call));
    }
    stub.UnaryCall(&c->ctx, "/chainfire.CallbackThreadHold/Hold", grpc::StubOptions(), &c->request,
                   &c->response, [state](grpc::Status) {
                     char name[16] = {};
                     pthread_getname_np(pthread_self(), name, sizeof name);
                     std::unique_lock<std::mutex> l(state->mu);
                     if (std::strcmp(name, kPoolThreadName) != 0 || state->released) {
                       ++state->returned;
                       state->cv.notify_all();
                       return;
                     }
                     ++state->held;
                     state->cv.notify_all();
                     state->cv.wait(l, [&] { return state->released; });
                     --state->held;
                     state->cv.notify_all();
                   });
    std::unique_lock<std::mutex> l(state->mu);
    const bool arrived =
        state->cv.wait_until(l, deadline, [&] { return state->held + state->returned == i + 1; });
    if (!arrived || state->returned > 0) break;
  }
  std::lock_guard<std::mutex> l(state->mu);
  if (state->returned > 0) {
    spdlog::warn("gRPC ran a callback outside its callback threads; they are not held");
  }
  return hold;
}

int CallbackThreadHold::held() const {
  std::lock_guard<std::mutex> l(state_->mu);
  return state_->held;
}

void CallbackThreadHold::Release() {
  std::unique_lock<std::mutex> l(state_->mu);
  state_->released = true;
  state_->cv.notify_all();
  // They return as soon as they are scheduled; the bound only keeps a shutdown from hanging.
  state_->cv.wait_for(l, std::chrono::seconds(5), [&] { return state_->held == 0; });
}

CallbackThreadHold::~CallbackThreadHold() { Release(); }

}  // namespace chainfire::server
