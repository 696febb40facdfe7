// Reading and writing register histories as JSON Lines, so the linearizability checker of the
// simulation also checks histories recorded against real clusters (the chaos lane).
//
// One operation per line:
//   {"id": 7, "client": 2, "kind": "put"|"get"|"cas", "key": "k1", "value": "v",
//    "expected": "old", "output": "read", "cas_ok": true, "unknown": false,
//    "call": 1234, "ret": 1300}
// "value" (put, cas), "expected" (cas), "output" (get) and "cas_ok" (cas) are needed only for
// their kinds; "ret" is ignored when "unknown" is true. Times are any monotonic integer clock.
// Thread-safety: plain functions.
#pragma once

#include <istream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "linearizability.h"

namespace chainfire::sim {

// Parses a history; an error names the line and what is wrong with it.
absl::StatusOr<std::vector<Operation>> ReadHistory(std::istream& in);
// One JSON line for `op` (no newline).
std::string HistoryLine(const Operation& op);

}  // namespace chainfire::sim
