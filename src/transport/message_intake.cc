#include "chainfire/transport/message_intake.h"

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace chainfire::transport {

peer::RaftMessage ToProto(const raft::Message& m) {
  raft::Message copy = m;
  return ToProto(std::move(copy));
}

peer::RaftMessage ToProto(raft::Message&& m) {
  peer::RaftMessage p;
  p.set_type(static_cast<uint32_t>(m.type));
  p.set_from(m.from);
  p.set_to(m.to);
  p.set_term(m.term);
  p.set_log_term(m.log_term);
  p.set_index(m.index);
  p.set_commit(m.commit);
  p.set_reject(m.reject);
  p.set_reject_hint(m.reject_hint);
  for (raft::Entry& e : m.entries) {
    peer::Entry* pe = p.add_entries();
    pe->set_term(e.term);
    pe->set_index(e.index);
    pe->set_data(std::move(e.data));
  }
  if (m.snapshot) {
    p.mutable_snapshot()->set_index(m.snapshot->meta.index);
    p.mutable_snapshot()->set_term(m.snapshot->meta.term);
    p.mutable_snapshot()->set_data(std::move(m.snapshot->data));
  }
  p.set_context(std::move(m.context));
  p.set_recovering(m.recovering);
  return p;
}

raft::Message FromProto(const peer::RaftMessage& p) {
  peer::RaftMessage copy = p;
  return FromProto(std::move(copy));
}

raft::Message FromProto(peer::RaftMessage&& p) {
  raft::Message m;
  m.type = static_cast<raft::MessageType>(p.type());
  m.from = p.from();
  m.to = p.to();
  m.term = p.term();
  m.log_term = p.log_term();
  m.index = p.index();
  m.commit = p.commit();
  m.reject = p.reject();
  m.reject_hint = p.reject_hint();
  m.entries.reserve(p.entries_size());
  for (peer::Entry& e : *p.mutable_entries()) {
    m.entries.push_back({e.term(), e.index(), std::move(*e.mutable_data())});
  }
  if (p.has_snapshot()) {
    m.snapshot = raft::Snapshot{{p.snapshot().index(), p.snapshot().term()},
                                std::move(*p.mutable_snapshot()->mutable_data())};
  }
  m.context = std::move(*p.mutable_context());
  m.recovering = p.recovering();
  return m;
}

absl::Status ValidatePeerMessage(const peer::RaftMessage& m, uint64_t self,
                                 const std::set<uint64_t>& members) {
  if (m.type() > static_cast<uint32_t>(raft::MessageType::kRecoveryProbeResp)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown message type ", m.type()));
  }
  const auto type = static_cast<raft::MessageType>(m.type());
  if (m.to() != self) return absl::InvalidArgumentError("message for another member");
  if (m.from() == self || !members.contains(m.from())) {
    return absl::InvalidArgumentError(absl::StrCat("message from non-member ", m.from()));
  }
  if (type != raft::MessageType::kApp && type != raft::MessageType::kProp && m.entries_size() > 0) {
    return absl::InvalidArgumentError("entries on a message that carries none");
  }
  if (type == raft::MessageType::kApp) {
    for (int i = 0; i < m.entries_size(); ++i) {
      const peer::Entry& e = m.entries(i);
      if (e.index() != m.index() + 1 + static_cast<uint64_t>(i) || e.term() > m.term() ||
          e.term() < m.log_term()) {
        return absl::InvalidArgumentError("append entries out of order");
      }
    }
  }
  if ((type == raft::MessageType::kSnap) != m.has_snapshot()) {
    return absl::InvalidArgumentError("snapshot on a message that carries none, or missing");
  }
  if (m.has_snapshot() && (m.snapshot().index() == 0 || m.snapshot().term() == 0)) {
    return absl::InvalidArgumentError("snapshot at index 0 or of term 0");
  }
  return absl::OkStatus();
}

MessageIntake::MessageIntake(uint64_t cluster_id, uint64_t self_id, std::set<uint64_t> members,
                             std::map<uint64_t, metrics::Counter*> received_bytes)
    : cluster_id_(cluster_id),
      self_id_(self_id),
      members_(std::move(members)),
      received_bytes_(std::move(received_bytes)) {}

void MessageIntake::Take(peer::MessageBatch&& batch, size_t bytes, const std::string& remote,
                         std::vector<raft::Message>* out) {
  if (auto it = received_bytes_.find(batch.from()); it != received_bytes_.end() && it->second) {
    it->second->Add(bytes);
  }
  if (batch.cluster_id() != cluster_id_) {
    if (foreign_batches_.fetch_add(1) % 100 == 0) {
      spdlog::warn("dropping messages from member {:x} of another cluster {:x} (ours {:x}) at {}",
                   batch.from(), batch.cluster_id(), cluster_id_, remote);
    }
    return;
  }
  out->reserve(out->size() + batch.messages_size());
  for (peer::RaftMessage& m : *batch.mutable_messages()) {
    if (absl::Status s = ValidatePeerMessage(m, self_id_, members_); !s.ok()) {
      if (invalid_messages_.fetch_add(1) % 100 == 0) {
        spdlog::warn("dropping a message from {:x} at {}: {}", m.from(), remote,
                     std::string(s.message()));
      }
      continue;
    }
    out->push_back(FromProto(std::move(m)));
  }
}

}  // namespace chainfire::transport
