#include "chainfire/server/logging.h"

#include <chrono>
#include <ctime>
#include <vector>

#include "absl/strings/str_split.h"
#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/basic_file_sink.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace chainfire::server {
namespace {

void AppendJsonString(spdlog::memory_buf_t& out, std::string_view s) {
  out.push_back('"');
  for (const char c : s) {
    switch (c) {
      case '"':
        out.append(std::string_view("\\\""));
        break;
      case '\\':
        out.append(std::string_view("\\\\"));
        break;
      case '\n':
        out.append(std::string_view("\\n"));
        break;
      case '\r':
        out.append(std::string_view("\\r"));
        break;
      case '\t':
        out.append(std::string_view("\\t"));
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out.append(std::string_view(buf));
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

const char* ZapLevel(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "fatal";
    default:
      return "info";
  }
}

class ZapFormatter : public spdlog::formatter {
 public:
  explicit ZapFormatter(std::string name) : name_(std::move(name)) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto since = msg.time.time_since_epoch();
    const std::time_t secs = std::chrono::duration_cast<std::chrono::seconds>(since).count();
    const int ms = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(since).count() % 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char ts[40];
    std::snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    dest.append(std::string_view("{\"level\":\""));
    dest.append(std::string_view(ZapLevel(msg.level)));
    dest.append(std::string_view("\",\"ts\":\""));
    dest.append(std::string_view(ts));
    dest.push_back('"');
    if (!msg.source.empty()) {
      const std::string_view file(msg.source.filename);
      const size_t slash = file.rfind('/');
      dest.append(std::string_view(",\"caller\":"));
      AppendJsonString(
          dest, std::string(slash == std::string_view::npos ? file : file.substr(slash + 1)) + ":" +
                    std::to_string(msg.source.line));
    }
    dest.append(std::string_view(",\"msg\":"));
    AppendJsonString(dest, std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(std::string_view(",\"name\":"));
    AppendJsonString(dest, name_);
    dest.append(std::string_view("}\n"));
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<ZapFormatter>(name_);
  }

 private:
  const std::string name_;
};

}  // namespace

std::unique_ptr<spdlog::formatter> ZapJsonFormatter(const std::string& member_name) {
  return std::make_unique<ZapFormatter>(member_name);
}

absl::Status ConfigureLogging(const std::string& logger, const std::string& outputs,
                              const std::string& level, const std::string& member_name) {
  if (logger != "capnslog" && logger != "zap") {
    return absl::InvalidArgumentError("--logger " + logger + ": use capnslog or zap");
  }
  std::vector<spdlog::sink_ptr> sinks;
  for (absl::string_view out : absl::StrSplit(outputs, ',', absl::SkipWhitespace())) {
    if (out == "default" || out == "stderr") {
      sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
    } else if (out == "stdout") {
      sinks.push_back(std::make_shared<spdlog::sinks::stdout_sink_mt>());
    } else {
      try {
        sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(std::string(out)));
      } catch (const spdlog::spdlog_ex& e) {
        return absl::InvalidArgumentError("--log-outputs " + std::string(out) + ": " + e.what());
      }
    }
  }
  if (sinks.empty()) return absl::InvalidArgumentError("--log-outputs names no output");
  auto log = std::make_shared<spdlog::logger>("chainfire", sinks.begin(), sinks.end());
  if (logger == "zap") {
    log->set_formatter(ZapJsonFormatter(member_name));
  } else {
    log->set_formatter(std::make_unique<spdlog::pattern_formatter>("[%Y-%m-%d %H:%M:%S.%e] [%l] [" +
                                                                   member_name + "] %v"));
  }
  log->set_level(spdlog::level::from_str(level));
  log->flush_on(spdlog::level::trace);  // every line reaches its output at once
  spdlog::set_default_logger(log);
  return absl::OkStatus();
}

}  // namespace chainfire::server
