// The CPU scheduling policy of the daemon's threads (--cpu-scheduling).
//   "normal" (the default): SCHED_OTHER, the kernel's default.
//   "batch": Linux's SCHED_BATCH. A thread woken by another (a request handed to the node's
//     loop, a gRPC completion, a written log) does not preempt the thread running on that core;
//     it runs when that thread blocks or its time slice ends. A put crosses several threads in
//     each member; on a machine loaded by ChainFire alone the preemptions cost more than they
//     gained (docs/performance.md: 10-25% more puts per second at less CPU per put on 2 cores),
//     but beside other busy processes the member's wake-ups come later (timing-sensitive tests
//     failed with it), so it is opt-in. On idle cores nothing changes.
// Both are unprivileged policies at nice 0. Threads created later inherit the policy, so it is
// applied once, at start, before any other thread exists.
// Thread-safety: call from the main thread before starting threads.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace chainfire::server {

// Sets the calling thread's policy ("batch" or "normal"); InvalidArgument for another name,
// the system's error if the kernel refuses.
absl::Status ApplyCpuScheduling(const std::string& policy);

// The calling thread's policy as ApplyCpuScheduling names it ("batch", "normal" or "other").
std::string CurrentCpuScheduling();

}  // namespace chainfire::server
