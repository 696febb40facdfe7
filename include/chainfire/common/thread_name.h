// SetThreadName: names the calling thread (what `top -H`, `ps -L`, /proc/PID/task/*/comm and
// perf show), so an operator or a profile can tell ChainFire's threads apart. Linux keeps at
// most 15 characters; longer names are cut. Every thread ChainFire starts calls it first, so
// it also puts the thread under the CPU scheduling policy chosen for ChainFire's own threads
// (SetOwnThreadPolicy; threads of libraries, e.g. gRPC's, keep the one they inherited).
// Thread-safety: SetThreadName affects only the calling thread; SetOwnThreadPolicy is atomic.
#pragma once

namespace chainfire {

void SetThreadName(const char* name);

// The Linux policy (SCHED_OTHER, SCHED_BATCH) SetThreadName applies; -1 (the default): none.
void SetOwnThreadPolicy(int policy);

}  // namespace chainfire
