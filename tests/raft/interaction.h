// A data-driven harness for the Raft core, in the manner of etcd-io/raft's interaction tests:
// a script of commands drives a few RawNodes over MemoryStorage, and the output of every Ready
// and every delivered message is compared with the golden text in testdata/*.txt.
//
// File format: blocks of
//   command args...
//   ----
//   output lines
//   <blank line>
// Lines starting with '#' between blocks are comments. Set CHAINFIRE_REWRITE_GOLDEN=1 to
// rewrite the expected output from the current behaviour.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "chainfire/raft/raw_node.h"

namespace chainfire::raft::testing {

class Interaction {
 public:
  // Runs one command line and returns its output (without trailing newline).
  std::string Run(const std::string& command_line);

 private:
  struct Node {
    std::unique_ptr<MemoryStorage> storage;
    std::unique_ptr<RawNode> raw;
    bool isolated = false;
  };
  std::string AddNodes(int n, const std::vector<std::string>& args);
  std::string ProcessReady(NodeId id);
  std::string DeliverMessages(NodeId id);
  std::string Stabilize();
  std::string StatusOf(NodeId id);
  std::string LogOf(NodeId id);
  Node& N(NodeId id) { return nodes_.at(id - 1); }

  std::vector<Node> nodes_;
  std::vector<Message> in_flight_;
};

// Runs every block of `path`, returning a description of mismatches ("" when all match). With
// rewrite set, writes the actual output back into the file instead.
std::string RunDataDrivenFile(const std::string& path, bool rewrite);

}  // namespace chainfire::raft::testing
