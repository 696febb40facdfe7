// A linearizability checker for a history of register operations (Wing & Gong's search with
// Lowe's memoisation, as in Porcupine). Registers are independent, so each is checked alone.
//
// An operation whose outcome is unknown (the client timed out: it may or may not have taken
// effect) has no return event: it may be linearized at any point after its call.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace chainfire::sim {

enum class OpKind : uint8_t { kPut, kGet, kCas };

struct Operation {
  uint64_t id = 0;
  int client = 0;
  OpKind kind = OpKind::kPut;
  std::string key;
  std::string value;     // put: the value; cas: the new value
  std::string expected;  // cas: the value compared against
  std::string output;    // get: the value read ("" = never written)
  bool cas_ok = false;   // cas: whether it swapped
  bool unknown = false;  // no return event: possibly applied
  uint64_t call = 0;     // logical time of the call
  uint64_t ret = 0;      // logical time of the return (ignored when unknown)
};

enum class LinearizabilityResult { kOk, kViolation, kInconclusive };

struct LinearizabilityReport {
  LinearizabilityResult result = LinearizabilityResult::kOk;
  std::string key;          // the register that failed or was inconclusive
  std::string explanation;  // for a violation: the operations of that register
};

// Checks `history`; gives up on a register after `max_steps` search steps (inconclusive).
LinearizabilityReport CheckLinearizable(const std::vector<Operation>& history,
                                        uint64_t max_steps = 2'000'000);

std::string DescribeOperation(const Operation& op);

}  // namespace chainfire::sim
