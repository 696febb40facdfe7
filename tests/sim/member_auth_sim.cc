// The member simulation's auth actor and its checker: the real Members apply auth operations
// and permission-checked writes under every fault profile, and each applied entry's outcome is
// compared with a plain reference of etcd 3.4's rules (AuthModel), so a member that let a
// write through after a revoke, refused one it should take, or bumped the revision differently
// fails the seed (docs/testing.md, "The member simulation").
#include "absl/strings/str_cat.h"
#include "chainfire/auth/errors.h"
#include "member_world.h"

namespace chainfire::sim::member_sim {
namespace {

constexpr int kSetupSteps = 6;

// Setup step `i`: root, root's role, user w, role wr, w's role, auth on.
internal::Request SetupRequest(int i) {
  internal::Request r;
  switch (i) {
    case 0:
      r.mutable_user_add()->set_name("root");
      r.mutable_user_add()->set_hashed_password("$2b$04$simulated");
      break;
    case 1:
      r.mutable_user_grant_role()->set_user("root");
      r.mutable_user_grant_role()->set_role("root");
      break;
    case 2:
      r.mutable_user_add()->set_name("w");
      r.mutable_user_add()->set_hashed_password("$2b$04$simulated");
      break;
    case 3:
      r.mutable_role_add()->set_name("wr");
      break;
    case 4:
      r.mutable_user_grant_role()->set_user("w");
      r.mutable_user_grant_role()->set_role("wr");
      break;
    default:
      r.mutable_auth_enable();
  }
  return r;
}

// The keys a key-value request touches (the workload uses single keys only).
std::vector<std::string> KeysOf(const internal::Request& req) {
  std::vector<std::string> keys;
  if (req.has_put()) keys.push_back(req.put().key());
  if (req.has_delete_range()) keys.push_back(req.delete_range().key());
  if (req.has_txn()) {
    for (const auto& c : req.txn().compare()) keys.push_back(c.key());
    for (const auto* ops : {&req.txn().success(), &req.txn().failure()}) {
      for (const auto& op : *ops) {
        if (op.has_request_put()) keys.push_back(op.request_put().key());
      }
    }
  }
  return keys;
}

// The reference: applies an auth operation to `m`; returns etcd's outcome ("" = OK).
std::string ApplyToModel(AuthModel& m, const internal::Request& req) {
  const std::string& user = req.username();
  const bool needs_admin = !req.has_authenticate() && !req.has_user_get() && !req.has_role_get();
  if (m.enabled && needs_admin) {
    if (user.empty()) return "user name is empty";
    if (!m.users.count(user)) return "user name not found";
    if (!m.users[user].count("root")) return "permission denied";
  }
  if (req.has_user_add()) {
    if (m.users.count(req.user_add().name())) return "user name already exists";
    m.users[req.user_add().name()];
  } else if (req.has_role_add()) {
    if (m.roles.count(req.role_add().name())) return "role name already exists";
    m.roles.insert(req.role_add().name());
  } else if (req.has_user_grant_role()) {
    const auto& g = req.user_grant_role();
    if (!m.users.count(g.user())) return "user name not found";
    if (g.role() != "root" && !m.roles.count(g.role())) return "role name not found";
    if (!m.users[g.user()].insert(g.role()).second) return "";  // no change, no new revision
  } else if (req.has_auth_enable()) {
    if (m.enabled) return "";
    if (!m.users.count("root")) return "root user does not exist";
    if (!m.users["root"].count("root")) return "root user does not have root role";
    m.enabled = true;
    return "";  // enabling keeps the revision
  } else if (req.has_role_grant_permission()) {
    if (!m.roles.count(req.role_grant_permission().name())) return "role name not found";
    m.wr_keys.insert(req.role_grant_permission().perm().key());
  } else if (req.has_role_revoke_permission()) {
    if (!m.roles.count(req.role_revoke_permission().role())) return "role name not found";
    if (!m.wr_keys.erase(req.role_revoke_permission().key())) {
      return "permission is not granted to the role";
    }
  } else {
    return "unexpected auth operation in the simulation";
  }
  ++m.revision;
  return "";
}

// The reference decision for a key-value request.
std::string DecideKv(const AuthModel& m, const internal::Request& req) {
  if (!m.enabled) return "";
  if (req.auth_revision() == 0) return "user name is empty";
  if (req.auth_revision() < m.revision) return "revision of auth store is old";
  auto u = m.users.find(req.username());
  if (u == m.users.end()) return "permission denied";
  if (u->second.count("root")) return "";
  for (const std::string& k : KeysOf(req)) {
    if (!u->second.count("wr") || !m.wr_keys.count(k)) return "permission denied";
  }
  return "";
}

std::string Outcome(const absl::Status& s) {
  const std::string prefix = "etcdserver: ";
  std::string m(s.message());
  return m.rfind(prefix, 0) == 0 ? m.substr(prefix.size()) : m;
}

}  // namespace

void MemberWorld::StampCaller(Node& n, internal::Request* req) {
  if (auth_setup_step_ == 0) return;  // no users yet
  // Most writes come from root; some from w, whose keys come and go.
  req->set_username(rng_.Chance(0.3) ? "w" : "root");
  req->set_auth_revision(n.member->auth().view()->revision());
}

void MemberWorld::Auth() {
  if (settling_) return;
  Node* leader = nullptr;
  for (Node& n : nodes_) {
    if (n.up && n.member->is_leader()) leader = &n;
  }
  if (leader == nullptr) return;
  if (auth_setup_step_ < kSetupSteps) {
    if (auth_setup_pending_ || now_ < auth_setup_retry_ms_) return;
    internal::Request req = SetupRequest(auth_setup_step_);
    if (auth_setup_step_ >= 2) {
      req.set_username("root");
      req.set_auth_revision(leader->member->auth().view()->revision());
    }
    auth_setup_pending_ = true;
    const int step = auth_setup_step_;
    leader->member->Propose(
        leader->member->Prepare(std::move(req)), [this, step](member::WriteResult r) {
          auth_setup_pending_ = false;
          // Applied (or applied before, by an earlier attempt): next step.
          const bool done = r.status.ok() || r.status == auth::ErrUserAlreadyExist() ||
                            r.status == auth::ErrRoleAlreadyExist();
          if (done && auth_setup_step_ == step) ++auth_setup_step_;
          if (!done) auth_setup_retry_ms_ = now_ + 50;
        });
    return;
  }
  if (!rng_.Chance(0.01)) return;
  // Churn: grant or revoke one of wr's keys (every change raises the revision).
  internal::Request req;
  const std::string key = absl::StrCat("k", rng_.Uniform(opt_.registers));
  if (rng_.Chance(0.5)) {
    auto* g = req.mutable_role_grant_permission();
    g->set_name("wr");
    g->mutable_perm()->set_key(key);
    g->mutable_perm()->set_permtype(authpb::Permission::READWRITE);
  } else {
    req.mutable_role_revoke_permission()->set_role("wr");
    req.mutable_role_revoke_permission()->set_key(key);
  }
  req.set_username(rng_.Chance(0.9) ? "root" : "w");  // w is refused: not root
  req.set_auth_revision(leader->member->auth().view()->revision());
  Trace(absl::StrCat("auth: ", req.has_role_grant_permission() ? "grant " : "revoke ", key, " as ",
                     req.username()));
  leader->member->Propose(leader->member->Prepare(std::move(req)), [](member::WriteResult) {});
}

void MemberWorld::CheckAuthApplied(Node& n, const raft::Entry& e, const internal::Request& req,
                                   const member::WriteResult& r) {
  const bool auth_op = auth::AuthStore::IsAuthOp(req);
  if (!auth_op && KeysOf(req).empty()) return;
  // The model as of the entry before this one: every earlier entry was applied by some member
  // already (this one's log, or the snapshot it installed, holds them).
  auto it = auth_model_after_.lower_bound(e.index);
  AuthModel model = it == auth_model_after_.begin() ? AuthModel() : std::prev(it)->second;
  std::string expected;
  if (auth_op) {
    expected = ApplyToModel(model, req);
    auth_model_after_[e.index] = model;
  } else {
    expected = DecideKv(model, req);
  }
  const std::string got = r.status.ok() ? std::string() : Outcome(r.status);
  const bool auth_outcome = auth_op || got == "permission denied" ||
                            got == "revision of auth store is old" || got == "user name is empty";
  if (expected != (auth_outcome ? got : std::string())) {
    Fail(absl::StrCat("auth: entry ", e.index, " on n", n.id, " (", req.ShortDebugString(),
                      ") gave '", got, "', the reference says '", expected, "'"));
  }
  auto [at, fresh] = auth_outcome_at_.emplace(e.index, got);
  if (!fresh && at->second != got) {
    Fail(absl::StrCat("auth: entry ", e.index, " gave '", got, "' on n", n.id, " but '", at->second,
                      "' elsewhere"));
  }
  if (fresh && auth_op && got.empty()) ++result_.auth_changes;
  if (auth_op && got.empty() && n.member->auth().view()->revision() != model.revision) {
    Fail(absl::StrCat("auth: after entry ", e.index, " n", n.id, " is at auth revision ",
                      n.member->auth().view()->revision(), ", the reference at ", model.revision));
  }
}

}  // namespace chainfire::sim::member_sim
