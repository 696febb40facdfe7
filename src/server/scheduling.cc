#include "chainfire/server/scheduling.h"

#include <sched.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "chainfire/common/thread_name.h"

namespace chainfire::server {

absl::Status ApplyCpuScheduling(const std::string& policy) {
  int p = 0;
  int own = -1;  // ChainFire's own threads: inherit
  if (policy == "batch") {
    p = SCHED_BATCH;
  } else if (policy == "normal") {
    p = SCHED_OTHER;
  } else if (policy == "auto") {
    p = SCHED_BATCH;
    own = SCHED_OTHER;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--cpu-scheduling must be auto, batch or normal, not \"", policy, "\""));
  }
  sched_param param{};
  param.sched_priority = 0;
  if (sched_setscheduler(0, p, &param) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot set the CPU scheduling policy to ", policy, ": ", strerror(errno)));
  }
  SetOwnThreadPolicy(own);
  return absl::OkStatus();
}

std::string CurrentCpuScheduling() {
  switch (sched_getscheduler(0)) {
    case SCHED_BATCH:
      return "batch";
    case SCHED_OTHER:
      return "normal";
    default:
      return "other";
  }
}

}  // namespace chainfire::server
