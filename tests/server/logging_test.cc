// The zap-style JSON log line: etcd's field names, UTC ISO 8601 time with milliseconds, and a
// message escaped so every line is one valid JSON object.
#include "chainfire/server/logging.h"

#include <chrono>

#include "gtest/gtest.h"
#include "spdlog/details/log_msg.h"

namespace chainfire::server {
namespace {

std::string Format(const spdlog::details::log_msg& msg) {
  spdlog::memory_buf_t out;
  ZapJsonFormatter("m1")->format(msg, out);
  return std::string(out.data(), out.size());
}

TEST(ZapJsonFormatter, WritesEtcdsFieldsAndEscapesTheMessage) {
  spdlog::details::log_msg msg(spdlog::source_loc{}, "chainfire", spdlog::level::warn,
                               "slow \"fdatasync\"\\ took\n1.2s\x01");
  msg.time = std::chrono::system_clock::time_point(std::chrono::milliseconds(1796610626123));
  EXPECT_EQ(Format(msg),
            "{\"level\":\"warn\",\"ts\":\"2026-12-07T02:30:26.123Z\","
            "\"msg\":\"slow \\\"fdatasync\\\"\\\\ took\\n1.2s\\u0001\",\"name\":\"m1\"}\n");
}

TEST(ZapJsonFormatter, NamesTheCallerWhenKnownAndMapsLevels) {
  spdlog::details::log_msg msg(spdlog::source_loc{"/src/server/main.cc", 42, "main"}, "chainfire",
                               spdlog::level::err, "x");
  msg.time = std::chrono::system_clock::time_point(std::chrono::milliseconds(0));
  EXPECT_EQ(Format(msg),
            "{\"level\":\"error\",\"ts\":\"1970-01-01T00:00:00.000Z\",\"caller\":\"main.cc:42\","
            "\"msg\":\"x\",\"name\":\"m1\"}\n");
}

TEST(ConfigureLogging, RefusesAnUnknownLoggerAndNoOutput) {
  EXPECT_FALSE(ConfigureLogging("glog", "stderr", "info", "m1").ok());
  EXPECT_FALSE(ConfigureLogging("zap", ",", "info", "m1").ok());
  EXPECT_FALSE(ConfigureLogging("zap", "/dev/null/x.log", "info", "m1").ok());
}

}  // namespace
}  // namespace chainfire::server
