#include "chainfire/server/scheduling.h"

#include <string>
#include <thread>

#include "chainfire/common/thread_name.h"
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

TEST(CpuScheduling, AutoIsBatchForInheritorsAndNormalForChainFiresOwnThreads) {
  std::string self, inherited, own;
  std::thread t([&] {
    ASSERT_TRUE(ApplyCpuScheduling("auto").ok());
    self = CurrentCpuScheduling();
    std::thread library([&] { inherited = CurrentCpuScheduling(); });  // e.g. gRPC's
    library.join();
    std::thread ours([&] {
      SetThreadName("cf-test");
      own = CurrentCpuScheduling();
    });
    ours.join();
    ASSERT_TRUE(ApplyCpuScheduling("normal").ok());  // and own threads inherit again
  });
  t.join();
  EXPECT_EQ(self, "batch");
  EXPECT_EQ(inherited, "batch");
  EXPECT_EQ(own, "normal");
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
            "--cpu-scheduling must be auto, batch or normal, not \"fifo\"");
  EXPECT_EQ(child, "normal");
}

}  // namespace
}  // namespace chainfire::server
