#include "chainfire/common/thread_name.h"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cstring>
#include <string>

namespace chainfire {
namespace {
std::atomic<int> own_thread_policy{-1};
}  // namespace

void SetThreadName(const char* name) {
  std::string cut(name, strnlen(name, 15));
  pthread_setname_np(pthread_self(), cut.c_str());
  if (const int policy = own_thread_policy.load(); policy >= 0) {
    sched_param param{};
    sched_setscheduler(0, policy, &param);  // an unprivileged policy at nice 0: cannot fail
  }
}

void SetOwnThreadPolicy(int policy) { own_thread_policy.store(policy); }

}  // namespace chainfire
