#include "interaction.h"

#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace chainfire::raft::testing {
namespace {

uint64_t ToU64(const std::string& s) {
  uint64_t v = 0;
  if (!absl::SimpleAtoi(s, &v)) throw std::runtime_error("not a number: " + s);
  return v;
}

// key=value arguments.
std::string Arg(const std::vector<std::string>& args, const std::string& key,
                const std::string& fallback) {
  for (const std::string& a : args) {
    if (absl::StartsWith(a, key + "=")) return a.substr(key.size() + 1);
  }
  return fallback;
}

std::string Indent(const std::string& text) {
  std::string out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty()) continue;
    absl::StrAppend(&out, "  ", line, "\n");
  }
  return out;
}

}  // namespace

std::string Interaction::Run(const std::string& line) {
  std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
  const std::string cmd = words[0];
  std::vector<std::string> args(words.begin() + 1, words.end());
  auto id_arg = [&](size_t i) -> NodeId { return ToU64(args.at(i)); };
  std::string out;
  if (cmd == "add-nodes") {
    out = AddNodes(static_cast<int>(ToU64(args.at(0))), args);
  } else if (cmd == "campaign") {
    N(id_arg(0)).raw->Campaign();
  } else if (cmd == "tick") {
    const uint64_t times = ToU64(Arg(args, "n", "1"));
    for (uint64_t i = 0; i < times; ++i) N(id_arg(0)).raw->Tick();
  } else if (cmd == "propose") {
    absl::Status s = N(id_arg(0)).raw->Propose(args.at(1));
    if (!s.ok()) out = "error: " + std::string(s.message());
  } else if (cmd == "read-index") {
    absl::Status s = N(id_arg(0)).raw->ReadIndex(args.at(1));
    if (!s.ok()) out = "error: " + std::string(s.message());
  } else if (cmd == "transfer-leader") {
    N(ToU64(Arg(args, "from", "0"))).raw->TransferLeader(ToU64(Arg(args, "to", "0")));
  } else if (cmd == "process-ready") {
    for (size_t i = 0; i < args.size(); ++i) out += ProcessReady(id_arg(i));
  } else if (cmd == "deliver-msgs") {
    for (size_t i = 0; i < args.size(); ++i) out += DeliverMessages(id_arg(i));
  } else if (cmd == "stabilize") {
    out = Stabilize();
  } else if (cmd == "isolate") {
    N(id_arg(0)).isolated = true;
  } else if (cmd == "heal") {
    for (Node& n : nodes_) n.isolated = false;
  } else if (cmd == "status") {
    out = StatusOf(id_arg(0));
  } else if (cmd == "raft-log") {
    out = LogOf(id_arg(0));
  } else if (cmd == "compact") {
    Node& n = N(id_arg(0));
    const Index index = ToU64(args.at(1));
    absl::Status s = n.storage->CreateSnapshot(index, absl::StrCat("state@", index));
    if (s.ok()) s = n.storage->Compact(index);
    if (!s.ok()) out = "error: " + std::string(s.message());
  } else {
    throw std::runtime_error("unknown command: " + cmd);
  }
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out.empty() ? "ok" : out;
}

std::string Interaction::AddNodes(int n, const std::vector<std::string>& args) {
  std::vector<NodeId> voters;
  for (int i = 1; i <= n; ++i) voters.push_back(i);
  for (int i = 1; i <= n; ++i) {
    Node node;
    node.storage = std::make_unique<MemoryStorage>();
    Config cfg;
    cfg.id = i;
    cfg.voters = voters;
    cfg.election_tick = 10;
    cfg.heartbeat_tick = 1;
    cfg.pre_vote = Arg(args, "pre-vote", "true") == "true";
    cfg.check_quorum = Arg(args, "check-quorum", "true") == "true";
    cfg.max_size_per_msg = ToU64(Arg(args, "max-size", "1048576"));
    cfg.max_inflight_msgs = ToU64(Arg(args, "max-inflight", "256"));
    cfg.seed = ToU64(Arg(args, "seed", "7"));
    auto raw = RawNode::Create(cfg, node.storage.get());
    if (!raw.ok()) throw std::runtime_error(raw.status().ToString());
    node.raw = std::move(*raw);
    nodes_.push_back(std::move(node));
  }
  return "";
}

std::string Interaction::ProcessReady(NodeId id) {
  Node& n = N(id);
  if (!n.raw->HasReady()) return "";
  Ready rd = n.raw->GetReady();
  std::string out = absl::StrCat("> n", id, " handling Ready\n", Indent(Describe(rd)));
  // Persist at once (the harness's disk is synchronous), then send, then advance.
  if (rd.snapshot) (void)n.storage->ApplySnapshot(*rd.snapshot);
  (void)n.storage->Append(rd.entries);
  if (rd.hard_state) n.storage->SetHardState(*rd.hard_state);
  for (Message& m : rd.early_messages) in_flight_.push_back(m);
  for (Message& m : rd.messages) in_flight_.push_back(m);
  n.raw->Advance(rd);
  return out;
}

std::string Interaction::DeliverMessages(NodeId id) {
  std::vector<Message> mine, rest;
  for (Message& m : in_flight_) (m.to == id ? mine : rest).push_back(std::move(m));
  in_flight_ = std::move(rest);
  if (mine.empty()) return "";
  std::string out = absl::StrCat("> n", id, " receiving messages\n");
  for (Message& m : mine) {
    if (N(id).isolated || N(m.from).isolated) {
      absl::StrAppend(&out, "  ", Describe(m), " DROPPED\n");
      continue;
    }
    absl::StrAppend(&out, "  ", Describe(m), "\n");
    absl::Status s = N(id).raw->Step(m);
    if (!s.ok()) absl::StrAppend(&out, "  error: ", s.message(), "\n");
  }
  return out;
}

std::string Interaction::Stabilize() {
  std::string out;
  for (int round = 0; round < 1000; ++round) {
    bool any = false;
    for (NodeId id = 1; id <= nodes_.size(); ++id) {
      std::string s = ProcessReady(id);
      any |= !s.empty();
      out += s;
    }
    for (NodeId id = 1; id <= nodes_.size(); ++id) {
      std::string s = DeliverMessages(id);
      any |= !s.empty();
      out += s;
    }
    if (!any) return out;
  }
  throw std::runtime_error("stabilize did not settle");
}

std::string Interaction::StatusOf(NodeId id) {
  const Status st = N(id).raw->GetStatus();
  std::string out =
      absl::StrCat(RoleName(st.soft_state.role), " lead=", st.soft_state.lead, " ",
                   Describe(st.hard_state), " applied=", st.applied, " last=", st.last_index);
  for (const auto& [peer, pr] : st.progress) {
    absl::StrAppend(&out, "\n", peer, ": ", pr.state, " match=", pr.match, " next=", pr.next);
  }
  return out;
}

std::string Interaction::LogOf(NodeId id) {
  MemoryStorage& s = *N(id).storage;
  std::string out;
  auto snap = s.GetSnapshot();
  if (snap.ok() && !snap->IsEmpty()) {
    absl::StrAppend(&out, "snapshot ", snap->meta.index, "/", snap->meta.term, " ", snap->data,
                    "\n");
  }
  if (s.LastIndex() >= s.FirstIndex()) {
    auto entries = s.Entries(s.FirstIndex(), s.LastIndex() + 1, kNoLimit);
    for (const Entry& e : *entries) absl::StrAppend(&out, Describe(e), "\n");
  }
  return out.empty() ? "log is empty" : out;
}

std::string RunDataDrivenFile(const std::string& path, bool rewrite) {
  std::ifstream in(path);
  if (!in) return "cannot open " + path;
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  Interaction harness;
  std::string rewritten, mismatches;
  size_t i = 0;
  while (i < lines.size()) {
    const std::string& line = lines[i];
    if (line.empty() || line[0] == '#') {
      rewritten += line + "\n";
      ++i;
      continue;
    }
    const std::string command = line;
    const size_t command_line = i + 1;
    ++i;
    if (i >= lines.size() || lines[i] != "----") {
      return absl::StrCat(path, ":", command_line, ": expected ---- after the command");
    }
    ++i;
    std::string expected;
    while (i < lines.size() && !lines[i].empty()) expected += lines[i++] + "\n";
    if (!expected.empty()) expected.pop_back();
    std::string actual;
    try {
      actual = harness.Run(command);
    } catch (const std::exception& e) {
      return absl::StrCat(path, ":", command_line, ": ", e.what());
    }
    if (actual != expected) {
      absl::StrAppend(&mismatches, path, ":", command_line, ": ", command, "\n--- expected\n",
                      expected, "\n--- actual\n", actual, "\n");
    }
    absl::StrAppend(&rewritten, command, "\n----\n", actual, "\n");
  }
  if (rewrite) {
    std::ofstream out(path);
    out << rewritten;
    return "";
  }
  return mismatches;
}

}  // namespace chainfire::raft::testing
