#include "chainfire/member/member.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "chainfire/common/check.h"
#include "chainfire/mvcc/layout.h"
#include "spdlog/spdlog.h"

namespace chainfire::member {

absl::Status ErrNoLeader() { return absl::UnavailableError("etcdserver: no leader"); }
absl::Status ErrLeaderChanged() { return absl::UnavailableError("etcdserver: leader changed"); }
absl::Status ErrTimeout() { return absl::UnavailableError("etcdserver: request timed out"); }
absl::Status ErrStopped() { return absl::UnavailableError("etcdserver: server stopped"); }

absl::StatusOr<std::unique_ptr<Member>> Member::Open(MemberOptions options, storage::Engine* engine,
                                                     node::NodeStorage* log,
                                                     node::Transport* transport, int64_t now_ms) {
  auto m = std::unique_ptr<Member>(new Member(std::move(options)));
  m->engine_ = engine;
  m->log_ = log;
  m->now_ms_ = now_ms;
  m->started_ms_ = now_ms;
  mvcc::KvStoreOptions kv_options;
  kv_options.background_compaction = m->options_.background_threads;
  kv_options.testing_compaction_resurrects = m->options_.testing_compaction_resurrects;
  auto kv = mvcc::KvStore::Open(engine, kv_options);
  if (!kv.ok()) return kv.status();
  m->kv_ = std::move(*kv);
  m->hub_ = std::make_unique<mvcc::WatchHub>(m->kv_.get(), m->options_.watch_progress_interval,
                                             m->options_.background_threads);
  m->lessor_ = std::make_unique<node::Lessor>(m->options_.bugs.lease_no_reset_on_promote);
  const raft::HardState hs = log->InitialHardState();
  const uint64_t applied = m->kv_->applied_index();
  if (applied > hs.commit) {
    // Legitimate only as a snapshot install left it: the sender's state may be past the
    // snapshot's index, and nothing is applied past the commit index after that (found by the
    // member simulation: a member that crashed right after such an install refused to start).
    auto installed = engine->Get(storage::Column::kMeta, mvcc::layout::kInstalledAppliedKey);
    if (!installed.ok() || installed->size() != 8 ||
        storage::GetBigEndian64(installed->data()) != applied) {
      return absl::DataLossError(absl::StrCat("applied index ", applied,
                                              " is beyond the commit index ", hs.commit,
                                              "; refusing to start"));
    }
  }
  m->bootstrapped_ = log->LastIndex() > 0 || m->kv_->applied_index() > 0;
  for (auto& [id, blob] : m->kv_->LoadMemberAttributes()) m->attributes_[id] = blob;
  m->tokens_ = std::make_unique<auth::SimpleTokens>(m->options_.auth_token_ttl_ms);
  auto auth_record = m->kv_->LoadAuthState();
  if (!auth_record.ok()) return auth_record.status();
  if (absl::Status s = m->auth_.Load(*auth_record); !s.ok()) return s;
  for (const auto& [id, ttl] : m->kv_->Leases()) m->lessor_->Grant(id, ttl * 1000, now_ms);

  raft::Config cfg;
  cfg.id = m->options_.member_id;
  cfg.voters = m->options_.voters;
  cfg.election_tick = m->options_.election_ticks;
  cfg.heartbeat_tick = 1;
  // Raft's applied index never passes its commit index; entries up to the store's are skipped
  // when they are applied again (Apply).
  cfg.applied = std::min<uint64_t>(applied, hs.commit);
  cfg.max_size_per_msg = m->options_.max_size_per_msg;
  cfg.max_inflight_msgs = m->options_.max_inflight_msgs;
  cfg.recovering = m->options_.recovering;
  cfg.seed = m->options_.seed;
  cfg.testing_count_unpersisted_own_entries = m->options_.testing_count_unpersisted_own_entries;
  m->next_id_ = m->options_.seed << 20;  // request ids: unique across restarts
  {
    // Received snapshot files not installed yet (a crash between receipt and install) and
    // files being sent are useless now; the one a durable snapshot record names is kept (an
    // install interrupted by a crash is redone from it below).
    auto snap = log->GetSnapshot();
    m->CleanSnapshotDir(snap.ok() ? snap->data : std::string(), /*at_start=*/true);
  }
  node::NodeOptions nopt;
  nopt.snapshot_every = m->options_.snapshot_count;
  nopt.compaction_margin = m->options_.snapshot_catchup_entries;
  nopt.read_timeout_ticks = m->options_.election_ticks * 2;
  auto node = node::RaftNode::Create(cfg, nopt, log, transport, m.get());
  if (!node.ok()) return node.status();
  m->node_ = std::move(*node);
  m->first_index_ = log->FirstIndex();
  m->recovering_ = m->node_->status().hard_state.recovering || m->options_.recovering;
  m->replay_from_ = m->kv_->applied_index();
  m->replay_target_ = std::max<uint64_t>(hs.commit, m->replay_from_);
  m->log_at_start_ = std::max<uint64_t>(log->LastIndex(), m->replay_target_);
  spdlog::info("member {:x}: starting at applied index {}, commit index {}, log [{}, {}]",
               m->options_.member_id, m->replay_from_, m->replay_target_, log->FirstIndex(),
               log->LastIndex());
  return m;
}

Member::~Member() = default;

void Member::SetTime(int64_t now_ms) { now_ms_ = std::max(now_ms_, now_ms); }

void Member::Step(raft::Message m) { (void)node_->Step(std::move(m)); }

Member::Proposal Member::Prepare(internal::Request request) {
  Proposal p;
  p.id = next_id_.fetch_add(1);
  request.set_proposer(options_.member_id);
  request.set_id(p.id);
  request.set_format(auth::AuthStore::IsAuthOp(request) || !request.username().empty() ? 2 : 1);
  p.data = request.SerializeAsString();
  return p;
}

void Member::Propose(Proposal p, WriteDone done) {
  std::vector<std::pair<Proposal, WriteDone>> one;
  one.emplace_back(std::move(p), std::move(done));
  ProposeBatch(std::move(one));
}

void Member::ProposeBatch(std::vector<std::pair<Proposal, WriteDone>> writes) {
  // Chunks of at most max_size_per_msg bytes (at least one write each): a follower forwards
  // a chunk to the leader as one message.
  size_t begin = 0;
  while (begin < writes.size()) {
    size_t end = begin + 1;
    uint64_t bytes = writes[begin].first.data.size();
    while (end < writes.size() &&
           bytes + writes[end].first.data.size() <= options_.max_size_per_msg) {
      bytes += writes[end].first.data.size();
      ++end;
    }
    ProposeChunk(writes.begin() + begin, writes.begin() + end);
    begin = end;
  }
}

void Member::ProposeChunk(std::vector<std::pair<Proposal, WriteDone>>::iterator first,
                          std::vector<std::pair<Proposal, WriteDone>>::iterator last) {
  if (options_.bugs.reply_by_log_index && node_->status().soft_state.role == raft::Role::kLeader) {
    // The bug: remember where each entry should land and answer whatever lands there.
    raft::Index index = node_->status().last_index;
    for (auto it = first; it != last; ++it) waiter_by_index_[++index] = it->first.id;
  }
  std::vector<std::string> data;
  data.reserve(last - first);
  for (auto it = first; it != last; ++it) data.push_back(std::move(it->first.data));
  if (!node_->ProposeBatch(std::move(data)).ok()) {
    for (auto it = first; it != last; ++it) {
      WriteResult r;
      r.status = ErrNoLeader();
      it->second(std::move(r));
    }
    return;
  }
  for (auto it = first; it != last; ++it) {
    waiters_[it->first.id] =
        Waiter{std::move(it->second), now_ms_ + options_.request_timeout_ms, std::nullopt};
  }
}

void Member::ProposeInternal(internal::Request req, WriteDone done) {
  Propose(Prepare(std::move(req)), std::move(done));
}

void Member::Read(ReadDone done) {
  const uint64_t id = next_read_++;
  read_waiters_[id] = ReadWaiter{std::move(done), now_ms_ + options_.request_timeout_ms};
  node_->Read(id);
}

void Member::TransferLeadership(uint64_t target) {
  if (target == 0) {
    // The follower with the longest log: it can take over at once.
    raft::Index best = 0;
    for (const auto& [id, fs] : node_->status().progress) {
      if (id != options_.member_id && fs.match >= best) {
        best = fs.match;
        target = id;
      }
    }
  }
  if (target != 0) node_->TransferLeader(target);
}

void Member::Tick() {
  node_->Tick();
  ExpireRequests();
  MaybePublish();
  ExpireLeases();
  if (now_ms_ - tokens_expired_ms_ >= 1000) {
    tokens_->Expire(now_ms_);
    tokens_expired_ms_ = now_ms_;
  }
}

bool Member::Pump() {
  bool worked = false;
  for (int i = 0; i < 100000 && node_->PumpOnce(); ++i) worked = true;
  UpdateStatus();
  return worked;
}

std::map<uint64_t, uint64_t> Member::follower_lag() const {
  std::lock_guard<std::mutex> l(lag_mu_);
  return follower_lag_;
}

void Member::UpdateStatus() {
  const raft::Status st = node_->status();
  if (now_ms_ - lag_published_ms_ >= 1000 || (st.progress.empty() && !lag_empty_)) {
    // The leader's view of each follower, for the metrics; published once a second.
    std::map<uint64_t, uint64_t> lag;
    for (const auto& [id, p] : st.progress) {
      if (id != options_.member_id) lag[id] = st.last_index > p.match ? st.last_index - p.match : 0;
    }
    lag_empty_ = lag.empty();
    lag_published_ms_ = now_ms_;
    std::lock_guard<std::mutex> l(lag_mu_);
    follower_lag_ = std::move(lag);
  }
  term_ = st.hard_state.term;
  commit_ = st.hard_state.commit;
  first_index_ = log_->FirstIndex();
  if (!replay_logged_ && kv_->applied_index() >= replay_target_) {
    replay_logged_ = true;
    spdlog::info("member {:x}: replayed {} committed entries (applied index {} -> {}) in {} ms",
                 options_.member_id, replay_target_ - std::min(replay_target_, replay_from_),
                 replay_from_, kv_->applied_index(), now_ms_ - started_ms_);
  }
  if (recovering_ && !st.hard_state.recovering) {
    recovering_ = false;
    spdlog::info("member {:x}: finished disk-loss recovery at commit index {} (term {})",
                 options_.member_id, st.hard_state.commit, st.hard_state.term);
  }
}

void Member::FailAllWrites(const absl::Status& status) {
  std::map<uint64_t, Waiter> waiters;
  waiters.swap(waiters_);  // a completion may propose again: it finds an empty table
  for (auto& [id, w] : waiters) {
    WriteResult r;
    r.status = status;
    w.done(std::move(r));
  }
}

void Member::FailPending() {
  FailAllWrites(ErrStopped());
  std::map<uint64_t, ReadWaiter> reads;
  reads.swap(read_waiters_);
  for (auto& [id, w] : reads) w.done(ErrStopped());
}

void Member::ExpireRequests() {
  // Without a leader for a whole election timeout, pending writes fail now rather than at
  // their deadline. Their outcome is unknown to the client (one may still commit later), as
  // with any error after a proposal.
  const int64_t election = int64_t{options_.heartbeat_ms} * options_.election_ticks;
  if (leader_ == 0 && now_ms_ - leaderless_since_ms_ >= election) FailAllWrites(ErrNoLeader());
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    WriteResult r;
    if (it->second.leader_change_deadline_ms && *it->second.leader_change_deadline_ms <= now_ms_) {
      r.status = ErrLeaderChanged();
    } else if (it->second.deadline_ms <= now_ms_) {
      r.status = ErrTimeout();
    } else {
      ++it;
      continue;
    }
    WriteDone done = std::move(it->second.done);
    it = waiters_.erase(it);
    done(std::move(r));
  }
  for (auto it = read_waiters_.begin(); it != read_waiters_.end();) {
    if (it->second.deadline_ms <= now_ms_) {
      ReadDone done = std::move(it->second.done);
      it = read_waiters_.erase(it);
      done(ErrTimeout());
    } else {
      ++it;
    }
  }
}

void Member::ExpireLeases() {
  if (!is_leader()) return;
  for (int64_t id : lessor_->TakeExpired(now_ms_)) {
    internal::Request req;
    req.mutable_lease_revoke()->set_id(id);
    ProposeInternal(std::move(req), [this, id](WriteResult r) {
      if (!r.status.ok()) lessor_->RevokeFailed(id);
    });
  }
}

void Member::MaybePublish() {
  if (published_ || publish_pending_ || leader_ == 0 || now_ms_ < next_publish_ms_) return;
  internal::Request req;
  internal::PublishMember* p = req.mutable_publish();
  p->set_member_id(options_.member_id);
  p->set_name(options_.name);
  for (const std::string& u : options_.client_urls) p->add_client_urls(u);
  publish_pending_ = true;
  ProposeInternal(std::move(req), [this](WriteResult r) {
    publish_pending_ = false;
    if (r.status.ok()) {
      published_ = true;
    } else {
      next_publish_ms_ = now_ms_ + 1000;
    }
  });
}

etcdserverpb::LeaseKeepAliveResponse Member::KeepAlive(int64_t id, int64_t now_ms) {
  etcdserverpb::LeaseKeepAliveResponse resp;
  resp.set_id(id);
  resp.set_ttl(lessor_->Renew(id, now_ms) / 1000);
  FillHeader(resp.mutable_header());
  return resp;
}

etcdserverpb::LeaseTimeToLiveResponse Member::TimeToLive(
    const etcdserverpb::LeaseTimeToLiveRequest& req, int64_t now_ms) {
  etcdserverpb::LeaseTimeToLiveResponse resp;
  resp.set_id(req.id());
  resp.set_ttl(-1);
  if (auto r = lessor_->Remaining(req.id(), now_ms)) {
    resp.set_ttl(r->first / 1000);  // as etcd 3.4: whole seconds left, rounded down
    resp.set_grantedttl(r->second / 1000);
    if (req.keys()) {
      for (const std::string& k : kv_->LeaseKeys(req.id())) resp.add_keys(k);
    }
  }
  FillHeader(resp.mutable_header());
  return resp;
}

int64_t Member::min_lease_ttl() const {
  const int64_t ms = (3 * options_.election_ticks / 2) * options_.heartbeat_ms;
  return std::max<int64_t>(1, (ms + 999) / 1000);
}

std::map<uint64_t, std::string> Member::Attributes() const {
  std::lock_guard<std::mutex> l(attributes_mu_);
  return attributes_;
}

void Member::FillHeader(etcdserverpb::ResponseHeader* header) const {
  header->set_cluster_id(options_.membership.cluster_id());
  header->set_member_id(options_.member_id);
  header->set_raft_term(term_.load());
  if (header->revision() == 0) header->set_revision(kv_->revision());
}

namespace {
// What an entry that this build cannot apply holds, for the error that stops the member.
std::string DescribeUnknown(const internal::Request& req) {
  std::vector<std::string> fields;
  const auto& unknown = req.GetReflection()->GetUnknownFields(req);
  for (int i = 0; i < unknown.field_count(); ++i) {
    fields.push_back(absl::StrCat(unknown.field(i).number()));
  }
  return fields.empty() ? std::string("no operation")
                        : absl::StrCat("unknown field(s) ", absl::StrJoin(fields, ", "));
}
}  // namespace

void Member::Apply(const raft::Entry& entry) {
  // An installed snapshot may hold the state past its own index (the sender's applied index
  // when it wrote the file): those entries are in the store already.
  if (entry.index <= kv_->applied_index()) return;
  if (!batch_open_) {
    kv_->BeginBatch();
    batch_open_ = true;
  }
  if (entry.data.empty()) {
    kv_->MarkApplied(entry.index);  // a leader's no-op
    // The bug answers whatever lands at a predicted index, a new leader's no-op included.
    if (options_.bugs.reply_by_log_index) Reply(entry.index, internal::Request(), WriteResult());
    return;
  }
  internal::Request req;
  CF_CHECK(req.ParseFromString(entry.data)) << "undecodable log entry " << entry.index;
  if (req.format() > kRequestFormat || req.op_case() == internal::Request::OP_NOT_SET) {
    Fatal(absl::StrCat("log entry ", entry.index, " has request format ", req.format(), " (",
                       DescribeUnknown(req), "); this build applies formats up to ", kRequestFormat,
                       ". It was written by a newer ChainFire: upgrade this member before "
                       "restarting it (an entry is never skipped)."));
  }
  WriteResult result = ApplyRequest(entry.index, req);
  if (options_.on_applied) options_.on_applied(entry, req, result);
  Reply(entry.index, req, std::move(result));
}

WriteResult Member::ApplyRequest(uint64_t index, const internal::Request& req) {
  WriteResult result;
  if (auth::AuthStore::IsAuthOp(req)) {
    ApplyAuth(index, req, &result);
    return result;
  }
  if (auth_.enabled() && !options_.bugs.auth_not_rechecked) {
    if (absl::Status s = CheckPermission(req); !s.ok()) {
      kv_->MarkApplied(index);  // refused: changes nothing, but the entry is applied
      result.status = std::move(s);
      return result;
    }
  }
  switch (req.op_case()) {
    case internal::Request::kPut:
      result.status = kv_->ApplyPut(index, req.put(), &result.put);
      break;
    case internal::Request::kDeleteRange:
      result.status = kv_->ApplyDeleteRange(index, req.delete_range(), &result.delete_range);
      break;
    case internal::Request::kCompaction:
      result.status = kv_->ApplyCompact(index, req.compaction().revision(), &result.compaction);
      break;
    case internal::Request::kLeaseGrant:
      result.status = kv_->ApplyLeaseGrant(index, req.lease_grant().id(), req.lease_grant().ttl(),
                                           &result.lease_grant);
      if (result.status.ok()) {
        lessor_->Grant(req.lease_grant().id(), req.lease_grant().ttl() * 1000, now_ms_);
      }
      break;
    case internal::Request::kLeaseRevoke:
      result.status = kv_->ApplyLeaseRevoke(index, req.lease_revoke().id(), &result.lease_revoke);
      lessor_->Revoke(req.lease_revoke().id());
      break;
    case internal::Request::kAlarm:
      kv_->ApplyAlarm(index, req.alarm(), &result.alarm);
      break;
    case internal::Request::kTxn:
      result.status = kv_->ApplyTxn(index, req.txn(), &result.txn);
      break;
    case internal::Request::kPublish: {
      const std::string blob = req.publish().SerializeAsString();
      kv_->ApplyMemberAttributes(index, req.publish().member_id(), blob);
      std::lock_guard<std::mutex> l(attributes_mu_);
      attributes_[req.publish().member_id()] = blob;
      break;
    }
    case internal::Request::OP_NOT_SET:
      CF_CHECK(false) << "unreachable: checked by Apply";
    default:
      CF_CHECK(false) << "unreachable: auth operations are applied by ApplyAuth";
  }
  return result;
}

void Member::Reply(uint64_t index, const internal::Request& req, WriteResult result) {
  uint64_t id = req.id();
  if (options_.bugs.reply_by_log_index) {
    auto by_index = waiter_by_index_.find(index);
    if (by_index == waiter_by_index_.end()) return;
    id = by_index->second;
    waiter_by_index_.erase(by_index);
  } else if (req.proposer() != options_.member_id) {
    return;
  }
  auto it = waiters_.find(id);
  if (it == waiters_.end()) return;
  WriteDone done = std::move(it->second.done);
  waiters_.erase(it);
  if (options_.bugs.reply_before_batch_visible) {
    done(std::move(result));
    return;
  }
  // Answered once the batch is visible (OnAppliedBatch), never before.
  applied_replies_.emplace_back(std::move(done), std::move(result));
}

void Member::OnAppliedBatch() {
  if (!batch_open_) return;
  kv_->CommitBatch();
  batch_open_ = false;
  std::vector<std::pair<WriteDone, WriteResult>> replies;
  replies.swap(applied_replies_);
  for (auto& [done, result] : replies) done(std::move(result));
}

void Member::OnReadReady(uint64_t read_id) {
  auto it = read_waiters_.find(read_id);
  if (it == read_waiters_.end()) return;
  ReadDone done = std::move(it->second.done);
  read_waiters_.erase(it);
  done(absl::OkStatus());
}

void Member::OnReadFailed(uint64_t read_id) {
  auto it = read_waiters_.find(read_id);
  if (it == read_waiters_.end()) return;
  ReadDone done = std::move(it->second.done);
  read_waiters_.erase(it);
  done(leader_ == 0 ? ErrNoLeader() : ErrLeaderChanged());
}

void Member::OnSoftStateChange(const raft::SoftState& state) {
  if (state.lead == 0 && leader_ != 0) leaderless_since_ms_ = now_ms_;
  const int64_t election = int64_t{options_.heartbeat_ms} * options_.election_ticks;
  if (state.lead == options_.member_id && leader_ != options_.member_id) {
    // A new leader does not know when its predecessor last renewed each lease: give every
    // lease its full TTL plus an election timeout, so none expires early (as etcd 3.4).
    lessor_->Promote(now_ms_, election);
  }
  if (leader_ != 0 && state.lead != leader_) {
    // A new leader commits what the old one replicated within about an election timeout;
    // writes still waiting after that fail with "leader changed" (their outcome is unknown).
    for (auto& [id, w] : waiters_) {
      if (!w.leader_change_deadline_ms) w.leader_change_deadline_ms = now_ms_ + election;
    }
  }
  if (state.lead != leader_) {
    // One line per change, with the old and the new leader and the term (0: none).
    spdlog::info("member {:x}: leader changed from {:x} to {:x} at term {} (this member: {})",
                 options_.member_id, leader_, state.lead, node_->status().hard_state.term,
                 raft::RoleName(state.role));
  }
  leader_ = state.lead;
}

}  // namespace chainfire::member
