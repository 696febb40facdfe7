#include "history_io.h"

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace chainfire::sim {
namespace {

const char* KindName(OpKind k) {
  switch (k) {
    case OpKind::kPut:
      return "put";
    case OpKind::kGet:
      return "get";
    case OpKind::kCas:
      return "cas";
  }
  return "?";
}

absl::StatusOr<Operation> ParseLine(const std::string& line) {
  const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError("not a JSON object");
  Operation op;
  try {
    op.id = j.at("id").get<uint64_t>();
    op.client = j.value("client", 0);
    const std::string kind = j.at("kind").get<std::string>();
    if (kind == "put") {
      op.kind = OpKind::kPut;
    } else if (kind == "get") {
      op.kind = OpKind::kGet;
    } else if (kind == "cas") {
      op.kind = OpKind::kCas;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown kind \"", kind, "\""));
    }
    op.key = j.at("key").get<std::string>();
    op.unknown = j.value("unknown", false);
    op.call = j.at("call").get<uint64_t>();
    if (!op.unknown) op.ret = j.at("ret").get<uint64_t>();
    if (op.kind != OpKind::kGet) op.value = j.at("value").get<std::string>();
    if (op.kind == OpKind::kCas) {
      op.expected = j.at("expected").get<std::string>();
      if (!op.unknown) op.cas_ok = j.at("cas_ok").get<bool>();
    }
    if (op.kind == OpKind::kGet && !op.unknown) op.output = j.at("output").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(e.what());
  }
  if (!op.unknown && op.ret < op.call) {
    return absl::InvalidArgumentError("returns before it is called");
  }
  return op;
}

}  // namespace

absl::StatusOr<std::vector<Operation>> ReadHistory(std::istream& in) {
  std::vector<Operation> ops;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto op = ParseLine(line);
    if (!op.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("history line ", n, ": ", op.status().message()));
    }
    ops.push_back(*std::move(op));
  }
  return ops;
}

std::string HistoryLine(const Operation& op) {
  nlohmann::json j = {{"id", op.id},   {"client", op.client},   {"kind", KindName(op.kind)},
                      {"key", op.key}, {"unknown", op.unknown}, {"call", op.call}};
  if (!op.unknown) j["ret"] = op.ret;
  if (op.kind != OpKind::kGet) j["value"] = op.value;
  if (op.kind == OpKind::kCas) {
    j["expected"] = op.expected;
    if (!op.unknown) j["cas_ok"] = op.cas_ok;
  }
  if (op.kind == OpKind::kGet && !op.unknown) j["output"] = op.output;
  return j.dump();
}

}  // namespace chainfire::sim
