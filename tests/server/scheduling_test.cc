#include "chainfire/server/scheduling.h"

#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace chainfire::server {
namespace {

// Each case runs on a thread of its own: the policy belongs to a thread, and the test runner's
// main thread keeps its own.
std::string OnFreshThread(const std::string& policy, std::string* child_policy) {
  std::string result;
  std::thread t([&] {
    absl::Status s = ApplyCpuScheduling(policy);
    result = s.ok() ? CurrentCpuScheduling() : std::string(s.message());
    // A thread started afterwards inherits the policy.
    std::thread child([&] { *child_policy = CurrentCpuScheduling(); });
    child.join();
  });
  t.join();
  return result;
}

TEST(CpuScheduling, BatchIsAppliedAndInherited) {
  std::string child;
  EXPECT_EQ(OnFreshThread("batch", &child), "batch");
  EXPECT_EQ(child, "batch");
}

TEST(CpuScheduling, NormalUndoesBatch) {
  std::string child;
  std::string result;
  std::thread t([&] {
    ASSERT_TRUE(ApplyCpuScheduling("batch").ok());
    ASSERT_EQ(CurrentCpuScheduling(), "batch");
    ASSERT_TRUE(ApplyCpuScheduling("normal").ok());
    result = CurrentCpuScheduling();
  });
  t.join();
  EXPECT_EQ(result, "normal");
}

TEST(CpuScheduling, UnknownPolicyIsRefusedAndChangesNothing) {
  std::string child;
  EXPECT_EQ(OnFreshThread("fifo", &child),
            "--cpu-scheduling must be batch or normal, not \"fifo\"");
  EXPECT_EQ(child, "normal");
}

}  // namespace
}  // namespace chainfire::server
