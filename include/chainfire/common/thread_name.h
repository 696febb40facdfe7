// SetThreadName: names the calling thread (what `top -H`, `ps -L`, /proc/PID/task/*/comm and
// perf show), so an operator or a profile can tell ChainFire's threads apart. Linux keeps at
// most 15 characters; longer names are cut. Thread-safety: affects only the calling thread.
#pragma once

namespace chainfire {

void SetThreadName(const char* name);

}  // namespace chainfire
