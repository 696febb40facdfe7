// chainfire-lincheck: checks a recorded register history (JSON Lines, see history_io.h) for
// linearizability with the simulation's checker and prints a JSON verdict.
// Exit status: 0 linearizable, 1 violation, 2 inconclusive (search budget spent), 3 bad input.
#include <fstream>
#include <iostream>
#include <map>

#include "CLI/CLI.hpp"
#include "history_io.h"
#include "nlohmann/json.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Checks a register history (JSON Lines) for linearizability"};
  std::string path;
  uint64_t max_steps = 20'000'000;
  app.add_option("history", path, "History file, one operation per line")->required();
  app.add_option("--max-steps", max_steps, "Search steps per key before giving up");
  CLI11_PARSE(app, argc, argv);

  std::ifstream in(path);
  if (!in) {
    std::cerr << "chainfire-lincheck: cannot open " << path << "\n";
    return 3;
  }
  auto history = chainfire::sim::ReadHistory(in);
  if (!history.ok()) {
    std::cerr << "chainfire-lincheck: " << path << ": " << history.status().message() << "\n";
    return 3;
  }
  std::map<std::string, int> by_outcome;
  for (const auto& op : *history) by_outcome[op.unknown ? "unknown" : "ok"]++;
  const auto report = chainfire::sim::CheckLinearizable(*history, max_steps);
  using chainfire::sim::LinearizabilityResult;
  const char* verdict = report.result == LinearizabilityResult::kOk          ? "linearizable"
                        : report.result == LinearizabilityResult::kViolation ? "violation"
                                                                             : "inconclusive";
  nlohmann::json out = {{"operations", history->size()},
                        {"by_outcome", by_outcome},
                        {"verdict", verdict},
                        {"key", report.key},
                        {"explanation", report.explanation}};
  std::cout << out.dump(2) << "\n";
  switch (report.result) {
    case LinearizabilityResult::kOk:
      return 0;
    case LinearizabilityResult::kViolation:
      return 1;
    case LinearizabilityResult::kInconclusive:
      return 2;
  }
  return 2;
}
