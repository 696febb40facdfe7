// Fuzz target: what a member does with a batch of peer messages off the wire. The input is a
// serialized peer.MessageBatch; each message passes the transport's checks
// (ValidatePeerMessage) and, if accepted, is stepped into a Raft node (member 1 of {1,2,3})
// whose Ready output is persisted to memory and advanced, as the node driver does. A forged
// or nonsensical message may be refused, never crash the member.
#include <cstdint>
#include <memory>

#include "chainfire/peer.pb.h"
#include "chainfire/raft/raw_node.h"
#include "chainfire/transport/peer_transport.h"

namespace {

using chainfire::raft::MemoryStorage;
using chainfire::raft::RawNode;

void Drain(RawNode* node, MemoryStorage* storage) {
  for (int i = 0; i < 8 && node->HasReady(); ++i) {
    chainfire::raft::Ready rd = node->GetReady();
    if (rd.snapshot) (void)storage->ApplySnapshot(*rd.snapshot);
    if (!rd.entries.empty()) (void)storage->Append(rd.entries);
    if (rd.hard_state) storage->SetHardState(*rd.hard_state);
    node->Advance(rd);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  chainfire::peer::MessageBatch batch;
  if (!batch.ParseFromArray(data, static_cast<int>(size))) return 0;
  MemoryStorage storage;
  // A member with a short history: entries 1..3 of term 1 and 4 of term 2, all committed.
  (void)storage.Append({{1, 1, "a"}, {1, 2, "b"}, {1, 3, "c"}, {2, 4, "d"}});
  storage.SetHardState({2, 0, 4});
  chainfire::raft::Config config;
  config.id = 1;
  config.voters = {1, 2, 3};
  auto node = RawNode::Create(config, &storage);
  if (!node.ok()) __builtin_trap();
  const std::set<uint64_t> members = {1, 2, 3};
  int n = 0;
  for (const chainfire::peer::RaftMessage& m : batch.messages()) {
    if (++n > 64) break;
    if (!chainfire::transport::ValidatePeerMessage(m, 1, members).ok()) continue;
    (void)(*node)->Step(chainfire::transport::FromProto(m));
    if (m.reject_hint() % 7 == 0) (*node)->Tick();
    Drain(node->get(), &storage);
  }
  return 0;
}
