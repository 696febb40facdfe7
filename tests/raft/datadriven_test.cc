// Golden tests of the Raft core: each testdata/*.txt is a script and its expected output.
#include <cstdlib>
#include <string>

#include "gtest/gtest.h"
#include "interaction.h"

namespace chainfire::raft::testing {
namespace {

class DataDriven : public ::testing::TestWithParam<std::string> {};

TEST_P(DataDriven, MatchesGolden) {
  const std::string path = std::string(CHAINFIRE_TESTDATA_DIR) + "/" + GetParam() + ".txt";
  const char* rewrite = std::getenv("CHAINFIRE_REWRITE_GOLDEN");
  const std::string mismatches =
      RunDataDrivenFile(path, rewrite != nullptr && std::string(rewrite) == "1");
  EXPECT_EQ(mismatches, "") << "rerun with CHAINFIRE_REWRITE_GOLDEN=1 to accept new output";
}

INSTANTIATE_TEST_SUITE_P(Raft, DataDriven,
                         ::testing::Values("election", "prevote", "checkquorum", "conflict",
                                           "read-index", "transfer", "snapshot", "commit-rule"));

}  // namespace
}  // namespace chainfire::raft::testing
