// The member's log: etcd 3.4's --logger, --log-outputs and --log-level.
//   --logger capnslog (default, as etcd 3.4): text lines "[time] [level] [member] message".
//   --logger zap: one JSON object per line with zap's field names, as etcd's zap logger writes
//     them: level, ts (ISO 8601, UTC, milliseconds), caller (when known), msg, plus the member's
//     name, so log shippers that parse etcd's logs parse ChainFire's.
//   --log-outputs: comma-separated "default" (stderr), "stderr", "stdout" or file paths
//     (appended to).
// Every spdlog call in the process goes to the configured logger.
// Thread-safety: ConfigureLogging once at start, before other threads log; logging itself is
// thread-safe (spdlog's _mt sinks).
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "spdlog/formatter.h"

namespace chainfire::server {

absl::Status ConfigureLogging(const std::string& logger, const std::string& outputs,
                              const std::string& level, const std::string& member_name);

// The zap-style JSON line formatter (exposed for its test).
std::unique_ptr<spdlog::formatter> ZapJsonFormatter(const std::string& member_name);

}  // namespace chainfire::server
