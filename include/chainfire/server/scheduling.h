// The CPU scheduling policy of the daemon's threads (--cpu-scheduling).
//   "auto" (the default): gRPC's threads (its pollers, which read requests and run their
//     handlers) and RocksDB's background threads run under Linux's SCHED_BATCH; ChainFire's
//     own threads (the node thread with Raft's clock and heartbeats, the log writer, the peer
//     links, HTTP, readers) under the kernel's default. A woken SCHED_BATCH thread does not
//     preempt the thread running on its core; it runs when that one blocks or its time slice
//     ends. gRPC's pollers wake for every completion and each such preemption cost a switch
//     both ways: on 2 busy cores this gave 7-12% more puts per second at 14-18% less CPU
//     per put (docs/performance.md), while Raft's timing keeps the kernel's default.
//   "normal": SCHED_OTHER, the kernel's default, on every thread.
//   "batch": SCHED_BATCH on every thread (a little more throughput still, but Raft's ticks
//     and the log's fsyncs wait behind busy threads too; timing-sensitive tests failed with it
//     on a loaded machine).
// All are unprivileged policies at nice 0. Threads created later inherit the calling
// thread's policy (ChainFire's own switch to theirs when they start: SetThreadName), so it is
// applied once, at start, before any other thread exists.
// Thread-safety: call from the main thread before starting threads.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace chainfire::server {

// Sets the calling thread's policy ("auto": batch) and the one ChainFire's own threads take
// ("auto": normal; otherwise the same); InvalidArgument for another name, the system's error
// if the kernel refuses.
absl::Status ApplyCpuScheduling(const std::string& policy);

// The calling thread's policy as ApplyCpuScheduling names it ("batch", "normal" or "other").
std::string CurrentCpuScheduling();

}  // namespace chainfire::server
