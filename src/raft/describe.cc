// Text renderings of the core's types, for logs and the golden (data-driven) tests.
#include "absl/strings/str_cat.h"
#include "chainfire/raft/raw_node.h"

namespace chainfire::raft {

const char* MessageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kProp:
      return "MsgProp";
    case MessageType::kApp:
      return "MsgApp";
    case MessageType::kAppResp:
      return "MsgAppResp";
    case MessageType::kVote:
      return "MsgVote";
    case MessageType::kVoteResp:
      return "MsgVoteResp";
    case MessageType::kPreVote:
      return "MsgPreVote";
    case MessageType::kPreVoteResp:
      return "MsgPreVoteResp";
    case MessageType::kSnap:
      return "MsgSnap";
    case MessageType::kHeartbeat:
      return "MsgHeartbeat";
    case MessageType::kHeartbeatResp:
      return "MsgHeartbeatResp";
    case MessageType::kTransferLeader:
      return "MsgTransferLeader";
    case MessageType::kTimeoutNow:
      return "MsgTimeoutNow";
    case MessageType::kReadIndex:
      return "MsgReadIndex";
    case MessageType::kRecoveryProbe:
      return "MsgRecoveryProbe";
    case MessageType::kRecoveryProbeResp:
      return "MsgRecoveryProbeResp";
    case MessageType::kReadIndexResp:
      return "MsgReadIndexResp";
  }
  return "Msg?";
}

const char* RoleName(Role role) {
  switch (role) {
    case Role::kFollower:
      return "Follower";
    case Role::kPreCandidate:
      return "PreCandidate";
    case Role::kCandidate:
      return "Candidate";
    case Role::kLeader:
      return "Leader";
  }
  return "?";
}

std::string Describe(const Entry& e) {
  return absl::StrCat(e.term, "/", e.index, e.data.empty() ? " <noop>" : " ", e.data);
}

std::string Describe(const HardState& hs) {
  return absl::StrCat("Term:", hs.term, " Vote:", hs.vote, " Commit:", hs.commit,
                      hs.recovering ? " Recovering" : "");
}

std::string Describe(const Message& m) {
  std::string out = absl::StrCat(m.from, "->", m.to, " ", MessageTypeName(m.type), " Term:", m.term,
                                 " Log:", m.log_term, "/", m.index);
  if (m.commit != 0) absl::StrAppend(&out, " Commit:", m.commit);
  if (m.reject && m.type == MessageType::kAppResp) {
    absl::StrAppend(&out, " Rejected (Hint: ", m.reject_hint, ")");
  } else if (m.reject) {
    absl::StrAppend(&out, " Rejected");
  }
  if (!m.context.empty()) absl::StrAppend(&out, " Context:", m.context);
  if (m.recovering) absl::StrAppend(&out, " Recovering");
  if (!m.entries.empty()) {
    absl::StrAppend(&out, " Entries:[");
    for (size_t i = 0; i < m.entries.size(); ++i) {
      absl::StrAppend(&out, i ? ", " : "", Describe(m.entries[i]));
    }
    absl::StrAppend(&out, "]");
  }
  if (m.snapshot) {
    absl::StrAppend(&out, " Snapshot: Index:", m.snapshot->meta.index,
                    " Term:", m.snapshot->meta.term, " Data:", m.snapshot->data);
  }
  return out;
}

std::string Describe(const Ready& rd) {
  std::string out = "Ready:\n";
  if (rd.soft_state) {
    absl::StrAppend(&out, "  Lead:", rd.soft_state->lead, " State:", RoleName(rd.soft_state->role),
                    "\n");
  }
  if (rd.hard_state) absl::StrAppend(&out, "  HardState ", Describe(*rd.hard_state), "\n");
  if (!rd.entries.empty()) {
    absl::StrAppend(&out, "  Entries:\n");
    for (const Entry& e : rd.entries) absl::StrAppend(&out, "    ", Describe(e), "\n");
  }
  if (rd.snapshot) {
    absl::StrAppend(&out, "  Snapshot Index:", rd.snapshot->meta.index,
                    " Term:", rd.snapshot->meta.term, "\n");
  }
  if (!rd.committed_entries.empty()) {
    absl::StrAppend(&out, "  CommittedEntries:\n");
    for (const Entry& e : rd.committed_entries) absl::StrAppend(&out, "    ", Describe(e), "\n");
  }
  if (!rd.read_states.empty()) {
    absl::StrAppend(&out, "  ReadStates:\n");
    for (const ReadState& r : rd.read_states) {
      absl::StrAppend(&out, "    Index:", r.index, " Context:", r.context, "\n");
    }
  }
  if (!rd.early_messages.empty()) {
    absl::StrAppend(&out, "  EarlyMessages:\n");
    for (const Message& m : rd.early_messages) absl::StrAppend(&out, "    ", Describe(m), "\n");
  }
  if (!rd.messages.empty()) {
    absl::StrAppend(&out, "  Messages:\n");
    for (const Message& m : rd.messages) absl::StrAppend(&out, "    ", Describe(m), "\n");
  }
  return out;
}

}  // namespace chainfire::raft
