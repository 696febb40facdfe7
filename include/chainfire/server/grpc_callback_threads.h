// CallbackThreadHold: keeps gRPC's callback threads down to `keep` (--grpc-callback-threads).
//
// gRPC 1.51 (Debian 12's) runs every callback-API completion of a process (each request
// and reply of the client and peer ports' services, each stream message, each callback
// client call) on a pool of threads named "nexting_thread", max(2, min(16, cores / 2)) of
// them, which share one epoll set: when the thread that polls gets events, it first wakes a
// waiting pool thread to poll in its place (a futex wake and a context switch), then runs
// them. With one pool thread no such hand-over happens: it polls, runs what it got, polls
// again. gRPC has no setting for the pool's size. A CallbackThreadHold makes calls on an
// in-process channel of `server`, cancelled before they start, and holds the pool threads that
// run their completion callbacks (all but `keep` of the pool) inside those callbacks until
// Release. A callback that finds itself on a thread not named "nexting_thread" (another gRPC
// build, which runs callbacks elsewhere) returns at once and nothing is held.
//
// What it asks of the rest of the process: no gRPC callback blocks (long work, e.g. a scan of
// many keys, runs on ChainFire's own threads), as every callback-API call of the process waits
// behind one that does.
// Thread-safety: Hold and Release from one thread (main). Release is idempotent and also done
// by the destructor; it must come before `server` shuts down (gRPC joins its pool when the last
// server or channel using it is gone).
#pragma once

#include <memory>

#include "absl/time/time.h"
#include "grpcpp/server.h"

namespace chainfire::server {

class CallbackThreadHold {
 public:
  // Holds all but `keep` (>= 1) of the pool's threads, waiting up to `timeout` in all for the
  // pool to show in /proc and for each held thread to arrive. `server` must be started.
  static std::unique_ptr<CallbackThreadHold> Hold(grpc::Server* server, int keep,
                                                  absl::Duration timeout);
  ~CallbackThreadHold();

  // Threads of gRPC's pool seen when holding began, and how many are held now.
  int pool_threads() const { return pool_threads_; }
  int held() const;
  // Lets the held threads return to gRPC's pool and waits until they have.
  void Release();

  struct State;  // shared with the callbacks, which may outlive the object

 private:
  CallbackThreadHold() = default;
  std::shared_ptr<State> state_;
  std::shared_ptr<grpc::Channel> channel_;
  int pool_threads_ = 0;
};

// Threads of this process whose name is `name` (from /proc/self/task/*/comm).
int CountThreadsNamed(const char* name);

}  // namespace chainfire::server
