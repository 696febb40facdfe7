// WorkerPool: a fixed number of threads running submitted closures in submission order (each
// closure runs once, on one of the threads; with more than one thread, closures may overlap).
//
// Used to keep slow work (a linearizable Range scanning many keys) off a thread that must stay
// responsive (the node thread, which sends Raft heartbeats).
// Stop() runs every closure already submitted, then joins the threads; closures submitted after
// Stop() began run at once on the submitting thread, so nothing submitted is ever dropped.
// Thread-safety: Submit and Stop may be called from any thread, concurrently.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace chainfire {

class WorkerPool {
 public:
  // Starts `threads` (at least one) threads, named `name` (common/thread_name.h).
  explicit WorkerPool(size_t threads, const char* name = "cf-worker");
  ~WorkerPool();  // Stop()
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void Submit(std::function<void()> task);
  // Runs what is queued, then joins the threads. Idempotent.
  void Stop();

 private:
  void Run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace chainfire
