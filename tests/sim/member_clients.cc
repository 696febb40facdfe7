// The member simulation's clients: Put, DeleteRange, Txn (CAS), linearizable and serializable
// Range, Compact, leases and watches, as the gRPC services build them, and the checkers that
// judge what they observe (docs/testing.md, "The member simulation").
#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "chainfire/auth/errors.h"
#include "chainfire/common/check.h"
#include "member_world.h"

namespace chainfire::sim::member_sim {

std::string Describe(const mvccpb::Event& e) {
  return absl::StrCat(e.type() == mvccpb::Event::PUT ? "PUT " : "DELETE ", e.kv().key(), "=",
                      e.kv().value(), " c", e.kv().create_revision(), " v", e.kv().version());
}

void MemberWorld::Clients() {
  if (settling_) return;
  for (size_t ci = 0; ci < clients_.size(); ++ci) {
    Client& c = clients_[ci];
    if (c.busy || !rng_.Chance(0.3)) continue;
    // Prefer the member that last led; sometimes any member (a follower forwards).
    raft::NodeId target = rng_.Range(1, n_);
    if (rng_.Chance(0.6)) {
      for (Node& n : nodes_) {
        if (n.up && n.member->leader() != 0) {
          target = n.member->leader();
          break;
        }
      }
    }
    Node& n = N(target);
    if (!n.up) continue;  // connection refused: nothing happened
    IssueKv(ci, n);
  }
}

void MemberWorld::IssueKv(size_t ci, Node& n) {
  Client& c = clients_[ci];
  const std::string key = absl::StrCat("k", rng_.Uniform(opt_.registers));
  const uint64_t r = rng_.Uniform(100);
  if (r < 15) {
    SerializableRead(ci, n, key);
    return;
  }
  Kind kind = r < 45   ? Kind::kPut
              : r < 52 ? Kind::kDelete
              : r < 62 ? Kind::kCas
              : r < 98 ? Kind::kGet
                       : Kind::kCompact;
  if (kind == Kind::kCas && last_written_[key].empty()) kind = Kind::kPut;
  const uint64_t token = next_token_++;
  c.busy = true;
  c.kind = kind;
  c.token = token;
  c.member = n.id;
  c.deadline = now_ + kClientTimeoutMs;
  const raft::NodeId via = n.id;
  if (kind == Kind::kGet) {
    Operation op;
    op.id = token;
    op.client = static_cast<int>(ci);
    op.kind = OpKind::kGet;
    op.key = key;
    op.call = ++logical_;
    history_.push_back(op);
    discarded_.push_back(false);
    c.op = history_.size() - 1;
    n.member->Read([this, ci, token, via](absl::Status s) { OnReadDone(ci, token, via, s); });
    return;
  }
  internal::Request req;
  Operation op;
  op.id = token;
  op.client = static_cast<int>(ci);
  op.key = key;
  if (kind == Kind::kCompact) {
    const int64_t top = n.member->kv().revision();
    req.mutable_compaction()->set_revision(std::max<int64_t>(1, top - rng_.Uniform(3)));
    Trace(absl::StrCat("client ", ci, " compacts at ", req.compaction().revision(), " via n", via));
  } else if (kind == Kind::kDelete) {
    req.mutable_delete_range()->set_key(key);
    op.kind = OpKind::kPut;  // a register: absent reads as ""
  } else {
    op.value = absl::StrCat("c", ci, "v", token);
    if (kind == Kind::kCas) {
      op.kind = OpKind::kCas;
      op.expected = last_written_[key];
      etcdserverpb::TxnRequest* txn = req.mutable_txn();
      etcdserverpb::Compare* cmp = txn->add_compare();
      cmp->set_key(key);
      cmp->set_target(etcdserverpb::Compare::VALUE);
      cmp->set_result(etcdserverpb::Compare::EQUAL);
      cmp->set_value(op.expected);
      etcdserverpb::PutRequest* put = txn->add_success()->mutable_request_put();
      put->set_key(key);
      put->set_value(op.value);
    } else {
      op.kind = OpKind::kPut;
      req.mutable_put()->set_key(key);
      req.mutable_put()->set_value(op.value);
    }
    last_written_[key] = op.value;
    proposed_values_[key].insert(op.value);
  }
  StampCaller(n, &req);
  member::Member::Proposal p = n.member->Prepare(std::move(req));
  const std::pair<uint64_t, uint64_t> request_id{n.id, p.id};
  if (kind != Kind::kCompact) {
    op.call = ++logical_;
    history_.push_back(op);
    discarded_.push_back(false);
    c.op = history_.size() - 1;
    acked_.emplace(request_id, SIZE_MAX);  // filled in when acknowledged
  }
  proposing_ = true;  // a reply during the call is Raft's refusal: certainly no effect
  n.member->Propose(std::move(p), [this, ci, token, via, request_id](member::WriteResult r) {
    if (clients_[ci].busy && clients_[ci].token == token && clients_[ci].kind != Kind::kCompact &&
        r.status.ok()) {
      acked_[request_id] = clients_[ci].op;
    }
    OnWriteDone(ci, token, via, std::move(r));
  });
  proposing_ = false;
}

void MemberWorld::OnWriteDone(size_t ci, uint64_t token, raft::NodeId via, member::WriteResult r) {
  Client& c = clients_[ci];
  if (!c.busy || c.token != token) return;
  c.busy = false;
  if (c.kind == Kind::kCompact) {
    if (r.status.ok()) ++result_.compactions;
    return;
  }
  Operation& op = history_[c.op];
  if (!r.status.ok() && proposing_) {
    discarded_[c.op] = true;  // refused before it reached the log
    ++result_.failed_ops;
    return;
  }
  if (r.status == auth::ErrPermissionDenied() || r.status == auth::ErrAuthOldRevision() ||
      r.status == auth::ErrUserEmpty()) {
    // Refused at apply: certainly no effect (the linearizability check would see one).
    discarded_[c.op] = true;
    ++result_.auth_refused_writes;
    return;
  }
  if (!r.status.ok()) {
    op.unknown = true;  // the write may or may not have happened
    ++result_.unknown_writes;
    return;
  }
  op.ret = ++logical_;
  ++result_.acked_writes;
  int64_t rev = 0;
  bool changed = true;
  if (c.kind == Kind::kPut) {
    rev = r.put.header().revision();
  } else if (c.kind == Kind::kDelete) {
    rev = r.delete_range.header().revision();
    changed = r.delete_range.deleted() > 0;
  } else {
    rev = r.txn.header().revision();
    op.cas_ok = r.txn.succeeded();
    changed = op.cas_ok;
  }
  if (changed) {
    auto [it, fresh] = acked_revisions_.emplace(rev, c.op);
    if (!fresh) {
      Fail(absl::StrCat("revision: two acknowledged writes got revision ", rev, ": ",
                        DescribeOperation(history_[it->second]), " and ", DescribeOperation(op)));
    }
  }
  // The client reads its member at once: what it was told is done must be visible there.
  Node& n = N(via);
  if (n.up && n.member->kv().revision() < rev) {
    Fail(absl::StrCat("reply before visible: ", DescribeOperation(op), " acknowledged at revision ",
                      rev, " but n", via, " serves revision ", n.member->kv().revision()));
  }
}

void MemberWorld::OnReadDone(size_t ci, uint64_t token, raft::NodeId via, absl::Status s) {
  Client& c = clients_[ci];
  if (!c.busy || c.token != token) return;
  if (!s.ok()) {
    c.busy = false;
    discarded_[c.op] = true;
    ++result_.failed_ops;
    return;
  }
  // The daemon serves a scan later, on a reader thread: any state from the read index on is as
  // good. Half of the reads here are served a few steps later.
  if (rng_.Chance(0.5)) {
    deferred_reads_.push_back(DeferredRead{ci, token, via, N(via).incarnation});
    return;
  }
  ServeRead(ci, via);
}

void MemberWorld::ServeRead(size_t ci, raft::NodeId via) {
  Client& c = clients_[ci];
  c.busy = false;
  Operation& op = history_[c.op];
  etcdserverpb::RangeRequest req;
  req.set_key(op.key);
  etcdserverpb::RangeResponse resp;
  CF_CHECK(N(via).member->kv().Range(req, &resp).ok()) << "range failed";
  op.output = resp.kvs_size() > 0 ? resp.kvs(0).value() : std::string();
  op.ret = ++logical_;
  ++result_.reads;
}

void MemberWorld::ServeDeferredReads() {
  for (auto it = deferred_reads_.begin(); it != deferred_reads_.end();) {
    Client& c = clients_[it->client];
    Node& n = N(it->via);
    if (c.token != it->token || !c.busy) {
      it = deferred_reads_.erase(it);  // the client gave up
    } else if (!n.up || n.incarnation != it->incarnation) {
      discarded_[c.op] = true;  // the member went away with the connection
      ++result_.failed_ops;
      c.busy = false;
      it = deferred_reads_.erase(it);
    } else if (rng_.Chance(0.3)) {
      ServeRead(it->client, it->via);
      it = deferred_reads_.erase(it);
    } else {
      ++it;
    }
  }
}

void MemberWorld::SerializableRead(size_t ci, Node& n, const std::string& key) {
  etcdserverpb::RangeRequest req;
  req.set_key(key);
  req.set_serializable(true);
  etcdserverpb::RangeResponse resp;
  CF_CHECK(n.member->kv().Range(req, &resp).ok()) << "range failed";
  ++result_.serializable_reads;
  const std::string value = resp.kvs_size() > 0 ? resp.kvs(0).value() : std::string();
  if (!value.empty() && !proposed_values_[key].count(value)) {
    Fail(absl::StrCat("serializable read: n", n.id, " returned ", key, "=", value,
                      ", a value never written"));
  }
  const int64_t rev = resp.header().revision();
  auto [it, fresh] = serializable_sessions_.emplace(std::make_tuple(ci, n.id, n.incarnation), rev);
  if (!fresh) {
    if (rev < it->second) {
      Fail(absl::StrCat("serializable read: client ", ci, " saw revision ", it->second, " then ",
                        rev, " on n", n.id));
    }
    it->second = rev;
  }
  // No revision newer than what this member's applied index produced.
  auto at = revision_at_index_.upper_bound(n.member->applied_index());
  const int64_t limit = at == revision_at_index_.begin() ? 1 : std::prev(at)->second;
  if (rev > limit) {
    Fail(absl::StrCat("serializable read: n", n.id, " served revision ", rev,
                      " beyond its applied index ", n.member->applied_index(), " (revision ", limit,
                      ")"));
  }
}

void MemberWorld::Timeouts() {
  for (Client& c : clients_) {
    if (!c.busy || now_ < c.deadline) continue;
    c.busy = false;
    if (c.kind == Kind::kCompact) continue;
    if (c.kind == Kind::kGet) {
      discarded_[c.op] = true;
    } else {
      history_[c.op].unknown = true;
      ++result_.unknown_writes;
    }
  }
}

void MemberWorld::Leases() {
  if (!settling_) {
    size_t active = 0;
    for (const auto& [id, l] : leases_) active += (!l.revoked && now_ < l.keep_until) ? 1 : 0;
    if (active < 2 && rng_.Chance(0.01)) {
      Node& n = N(rng_.Range(1, n_));
      if (n.up) {
        const int64_t id = next_lease_++;
        internal::Request req;
        req.mutable_lease_grant()->set_id(id);
        req.mutable_lease_grant()->set_ttl(std::max(kLeaseTtlSeconds, n.member->min_lease_ttl()));
        LeaseState l;
        l.call_ms = now_;
        l.keep_until = now_ + rng_.Range(300, 1500);
        leases_[id] = l;
        n.member->Propose(n.member->Prepare(std::move(req)), [this, id](member::WriteResult r) {
          if (r.status.ok() && !leases_[id].granted) {
            leases_[id].granted = true;
            ++result_.leases_granted;
          }
        });
      }
    }
  }
  if (now_ % 50 != 0) return;
  for (auto& [id, l] : leases_) {
    if (!settling_ && !l.revoked && !l.client_revoked && now_ >= l.keep_until &&
        now_ < l.keep_until + 50 && rng_.Chance(0.3)) {
      // Some clients revoke their lease when done instead of letting it lapse.
      Node& n = N(rng_.Range(1, n_));
      if (n.up) {
        l.client_revoked = true;
        internal::Request req;
        req.mutable_lease_revoke()->set_id(id);
        Trace(absl::StrCat("client revokes lease ", id, " via n", n.id));
        n.member->Propose(n.member->Prepare(std::move(req)), [](member::WriteResult) {});
      }
    }
    if (l.revoked || now_ >= l.keep_until) continue;
    for (Node& n : nodes_) {
      if (!n.up || !n.member->is_leader()) continue;
      const etcdserverpb::LeaseKeepAliveResponse resp =
          n.member->KeepAlive(id, static_cast<int64_t>(now_));
      if (resp.ttl() > 0) {
        l.last_renew_ok = static_cast<int64_t>(now_);
      } else if (n.member->kv().HasLease(id)) {
        // Refused: being revoked (expired), or unknown to the leader's lessor, which must
        // know every lease its store holds.
        etcdserverpb::LeaseTimeToLiveRequest q;
        q.set_id(id);
        if (n.member->TimeToLive(q, static_cast<int64_t>(now_)).ttl() == -1) {
          Fail(absl::StrCat("lease keep-alive: leader n", n.id, " holds lease ", id,
                            " but its lessor does not know it"));
        }
      }
      break;
    }
  }
}

void MemberWorld::OpenWatch(size_t ci, ClientWatch& w, int64_t from) {
  std::vector<raft::NodeId> up;
  for (Node& n : nodes_) {
    if (n.up) up.push_back(n.id);
  }
  if (up.empty()) return;
  Node& n = N(up[rng_.Uniform(up.size())]);
  if (from == 0) {
    from = n.member->kv().revision() + 1;
    w = ClientWatch();
    w.active = true;
    w.start = from;
    w.last_covered = from - 1;
  }
  w.member = n.id;
  w.incarnation = n.incarnation;
  w.sink = std::make_unique<SimSink>(rng_.Range(1, 4));
  mvcc::WatchSpec spec;
  spec.key = kWatchKey;
  spec.range_end = kWatchEnd;
  spec.start_revision = from;
  n.member->watch_hub().Add(w.sink.get(), 1, spec);
  Trace(absl::StrCat("client ", ci, " watches on n", n.id, " (revision ", n.member->kv().revision(),
                     ") from revision ", from));
}

void MemberWorld::Watches() {
  for (size_t ci = 0; ci < clients_.size(); ++ci) {
    ClientWatch& w = clients_[ci].watch;
    if (!w.active) {
      if (!settling_ && rng_.Chance(0.01)) OpenWatch(ci, w, 0);
      continue;
    }
    Node& n = N(w.member);
    if (!w.sink || !n.up || n.incarnation != w.incarnation) {
      // The stream broke with its member: what was not read is lost; resume after the last
      // revision received.
      if (w.sink && n.up && n.incarnation == w.incarnation) {
        n.member->watch_hub().RemoveAll(w.sink.get());
      }
      w.sink.reset();
      OpenWatch(ci, w, w.last_covered + 1);
      continue;
    }
    if (!rng_.Chance(0.3)) continue;  // a slow reader
    SimSink& sink = *w.sink;
    while (!sink.queue().empty()) {
      SimSink::Batch b = std::move(sink.queue().front());
      sink.queue().pop_front();
      if (opt_.trace) {
        Trace(absl::StrCat(
            "client ", ci, " reads ", b.events.size(), " events through revision ", b.revision,
            " from n", w.member,
            b.events.empty() ? ""
                             : absl::StrCat(" (first at ", b.events[0].kv().mod_revision(), ")")));
      }
      for (const mvccpb::Event& e : b.events) {
        const int64_t rev = e.kv().mod_revision();
        if (rev <= w.last_covered || rev < w.last_event_rev || rev > b.revision) {
          Fail(absl::StrCat("watch: client ", ci, " got ", Describe(e), " at revision ", rev,
                            " after revision ", w.last_covered, " was complete"));
        }
        w.last_event_rev = rev;
        w.received[rev].push_back(Describe(e));
        ++result_.watch_events;
      }
      w.last_covered = std::max(w.last_covered, b.revision);
    }
    if (sink.compacted()) {
      // Legitimate only when the revision it needed next is gone.
      if (sink.compact_revision() <= w.last_covered + 1) {
        Fail(absl::StrCat("watch: client ", ci, " cancelled as compacted at ",
                          sink.compact_revision(), " but needed revision ", w.last_covered + 1));
      }
      n.member->watch_hub().RemoveAll(w.sink.get());
      w.sink.reset();
      clients_[ci].finished_watches.push_back(std::move(w));
      w = ClientWatch();
      continue;
    }
    if (!settling_ && rng_.Chance(0.002)) {  // the client cancels and later watches anew
      n.member->watch_hub().RemoveAll(w.sink.get());
      w.sink.reset();
      clients_[ci].finished_watches.push_back(std::move(w));
      w = ClientWatch();
    }
  }
}

void MemberWorld::WatchEverything(Node& n) {
  n.reference = std::make_unique<SimSink>(SIZE_MAX);
  mvcc::WatchSpec all;
  all.key = kWatchKey;
  all.range_end = kWatchEnd;
  all.start_revision = n.member->kv().revision() + 1;
  n.member->watch_hub().Add(n.reference.get(), 0, all);
}

void MemberWorld::ReadReference(Node& n) {
  if (n.reference->compacted()) {
    // Its catch-up fell below a compaction (after a snapshot install): watch live again.
    n.member->watch_hub().RemoveAll(n.reference.get());
    WatchEverything(n);
    return;
  }
  for (SimSink::Batch& b : n.reference->queue()) {
    std::map<int64_t, std::vector<std::string>> by_rev;
    for (const mvccpb::Event& e : b.events) by_rev[e.kv().mod_revision()].push_back(Describe(e));
    for (auto& [rev, events] : by_rev) {
      auto [it, fresh] = reference_events_.emplace(rev, events);
      if (!fresh && it->second != events) {
        Fail(absl::StrCat("watch: members disagree on the events of revision ", rev, " (n", n.id,
                          ": ", events.front(), "; earlier: ", it->second.front(), ")"));
      }
    }
  }
  n.reference->queue().clear();
}

void MemberWorld::CheckWatches() {
  for (size_t ci = 0; ci < clients_.size(); ++ci) {
    std::vector<ClientWatch*> all;
    for (ClientWatch& w : clients_[ci].finished_watches) all.push_back(&w);
    if (clients_[ci].watch.active) all.push_back(&clients_[ci].watch);
    for (ClientWatch* w : all) {
      for (const auto& [rev, events] : w->received) {
        auto it = reference_events_.find(rev);
        if (it != reference_events_.end() && it->second != events) {
          Fail(absl::StrCat("watch: client ", ci, " got other events at revision ", rev, ": ",
                            events.front(), " instead of ", it->second.front()));
        }
      }
      for (auto it = reference_events_.lower_bound(w->start);
           it != reference_events_.end() && it->first <= w->last_covered; ++it) {
        if (!w->received.count(it->first)) {
          Fail(absl::StrCat("watch: client ", ci, " watching from revision ", w->start,
                            " missed revision ", it->first, " (", it->second.front(),
                            ") though it saw everything up to ", w->last_covered));
        }
      }
    }
  }
}

}  // namespace chainfire::sim::member_sim
