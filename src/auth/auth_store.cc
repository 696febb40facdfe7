#include "chainfire/auth/auth_store.h"

#include <algorithm>

#include "chainfire/auth/errors.h"

namespace chainfire::auth {
namespace {

authpb::User* MutableUser(internal::AuthState* s, const std::string& name) {
  for (authpb::User& u : *s->mutable_users()) {
    if (u.name() == name) return &u;
  }
  return nullptr;
}

authpb::Role* MutableRole(internal::AuthState* s, const std::string& name) {
  for (authpb::Role& r : *s->mutable_roles()) {
    if (r.name() == name) return &r;
  }
  return nullptr;
}

bool HoldsRole(const authpb::User& u, const std::string& role) {
  return std::find(u.roles().begin(), u.roles().end(), role) != u.roles().end();
}

// Users and roles are kept sorted by name, as etcd's buckets list them.
template <typename T>
void SortByName(google::protobuf::RepeatedPtrField<T>* items) {
  std::sort(items->begin(), items->end(),
            [](const T& a, const T& b) { return a.name() < b.name(); });
}

void Bump(internal::AuthState* s) { s->set_revision(s->revision() + 1); }

}  // namespace

AuthView::AuthView(internal::AuthState state) : state_(std::move(state)) {
  for (int i = 0; i < state_.users_size(); ++i) users_[state_.users(i).name()] = i;
  for (int i = 0; i < state_.roles_size(); ++i) roles_[state_.roles(i).name()] = i;
  for (const authpb::User& u : state_.users()) {
    std::vector<const authpb::Role*> held;
    for (const std::string& r : u.roles()) {
      if (const authpb::Role* role = FindRole(r)) held.push_back(role);
    }
    permissions_[u.name()] = MergePermissions(held);
  }
}

const authpb::User* AuthView::FindUser(const std::string& name) const {
  auto it = users_.find(name);
  return it == users_.end() ? nullptr : &state_.users(it->second);
}

const authpb::Role* AuthView::FindRole(const std::string& name) const {
  auto it = roles_.find(name);
  return it == roles_.end() ? nullptr : &state_.roles(it->second);
}

bool AuthView::HasRole(const std::string& user, const std::string& role) const {
  const authpb::User* u = FindUser(user);
  return u != nullptr && HoldsRole(*u, role);
}

namespace {

absl::Status CheckOps(const AuthView& v, const Caller& c,
                      const google::protobuf::RepeatedPtrField<etcdserverpb::RequestOp>& ops);

absl::Status CheckTxnOf(const AuthView& v, const Caller& c, const etcdserverpb::TxnRequest& t) {
  for (const etcdserverpb::Compare& cmp : t.compare()) {
    if (absl::Status s = v.CheckKeys(c, cmp.key(), cmp.range_end(), false); !s.ok()) return s;
  }
  if (absl::Status s = CheckOps(v, c, t.success()); !s.ok()) return s;
  return CheckOps(v, c, t.failure());
}

absl::Status CheckOps(const AuthView& v, const Caller& c,
                      const google::protobuf::RepeatedPtrField<etcdserverpb::RequestOp>& ops) {
  for (const etcdserverpb::RequestOp& op : ops) {
    absl::Status s;
    switch (op.request_case()) {
      case etcdserverpb::RequestOp::kRequestRange:
        s = v.CheckKeys(c, op.request_range().key(), op.request_range().range_end(), false);
        break;
      case etcdserverpb::RequestOp::kRequestPut:
        s = v.CheckKeys(c, op.request_put().key(), "", true);
        if (s.ok() && op.request_put().prev_kv())
          s = v.CheckKeys(c, op.request_put().key(), "", false);
        break;
      case etcdserverpb::RequestOp::kRequestDeleteRange: {
        const auto& d = op.request_delete_range();
        s = v.CheckKeys(c, d.key(), d.range_end(), true);
        if (s.ok() && d.prev_kv()) s = v.CheckKeys(c, d.key(), d.range_end(), false);
        break;
      }
      case etcdserverpb::RequestOp::kRequestTxn:
        s = CheckTxnOf(v, c, op.request_txn());  // nested: checked too (etcd 3.4 skips them)
        break;
      default:
        break;
    }
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status AuthView::CheckTxn(const Caller& caller, const etcdserverpb::TxnRequest& txn) const {
  return CheckTxnOf(*this, caller, txn);
}

absl::Status AuthView::CheckKeys(const Caller& caller, const std::string& key,
                                 const std::string& range_end, bool write) const {
  if (!enabled()) return absl::OkStatus();
  if (caller.revision == 0) return ErrUserEmpty();
  if (caller.revision < revision()) return ErrAuthOldRevision();
  const authpb::User* u = FindUser(caller.user);
  if (u == nullptr) return ErrPermissionDenied();
  if (HoldsRole(*u, kRootRole)) return absl::OkStatus();
  const UserPermissions& p = permissions_.at(caller.user);
  return (write ? p.write : p.read).Covers(key, range_end) ? absl::OkStatus()
                                                           : ErrPermissionDenied();
}

absl::Status AuthView::CheckAdmin(const Caller& caller) const {
  if (!enabled()) return absl::OkStatus();
  if (caller.user.empty()) return ErrUserEmpty();
  const authpb::User* u = FindUser(caller.user);
  if (u == nullptr) return ErrUserNotFound();
  return HoldsRole(*u, kRootRole) ? absl::OkStatus() : ErrPermissionDenied();
}

AuthStore::AuthStore() { Publish(internal::AuthState()); }

absl::Status AuthStore::Load(const std::string& record) {
  internal::AuthState s;
  if (!record.empty() && !s.ParseFromString(record)) {
    return absl::DataLossError("the auth store record is corrupt");
  }
  Publish(std::move(s));
  return absl::OkStatus();
}

std::string AuthStore::Record() const { return view()->state().SerializeAsString(); }

std::shared_ptr<const AuthView> AuthStore::view() const {
  std::lock_guard<std::mutex> l(mu_);
  return view_;
}

void AuthStore::Publish(internal::AuthState state) {
  const bool enabled = state.enabled();
  const uint64_t revision = state.revision();
  auto v = std::make_shared<const AuthView>(std::move(state));
  {
    std::lock_guard<std::mutex> l(mu_);
    view_ = std::move(v);
  }
  enabled_.store(enabled, std::memory_order_release);
  revision_.store(revision, std::memory_order_release);
}

bool AuthStore::IsAuthOp(const internal::Request& req) {
  return req.op_case() >= internal::Request::kAuthEnable &&
         req.op_case() <= internal::Request::kRoleList;
}

absl::Status AuthStore::Apply(const internal::Request& req, const Caller& caller,
                              const std::string& token, AuthResult* result, AuthEffects* effects) {
  internal::AuthState s = view()->state();
  absl::Status st = ApplyOp(req, caller, token, &s, result, effects);
  if (st.ok() && effects->changed) Publish(std::move(s));
  return st;
}

absl::Status AuthStore::ApplyOp(const internal::Request& req, const Caller& caller,
                                const std::string& token, internal::AuthState* s,
                                AuthResult* result, AuthEffects* effects) {
  using R = internal::Request;
  std::shared_ptr<const AuthView> v = view();
  // etcd's needAdminPermission: every operation but Authenticate, UserGet and RoleGet (which
  // a user may also call on itself and on roles it holds).
  switch (req.op_case()) {
    case R::kAuthenticate:
      break;
    case R::kUserGet:
      if (absl::Status a = v->CheckAdmin(caller); !a.ok() && req.user_get().name() != caller.user) {
        return a;
      }
      break;
    case R::kRoleGet:
      if (absl::Status a = v->CheckAdmin(caller);
          !a.ok() && !v->HasRole(caller.user, req.role_get().role())) {
        return a;
      }
      break;
    default:
      if (absl::Status a = v->CheckAdmin(caller); !a.ok()) return a;
  }

  switch (req.op_case()) {
    case R::kAuthEnable: {
      if (s->enabled()) return absl::OkStatus();
      const authpb::User* root = v->FindUser(kRootUser);
      if (root == nullptr) return ErrRootUserNotExist();
      if (!HoldsRole(*root, kRootRole)) return ErrRootRoleNotExist();
      s->set_enabled(true);
      effects->changed = true;
      return absl::OkStatus();
    }
    case R::kAuthDisable:
      if (!s->enabled()) return absl::OkStatus();
      s->set_enabled(false);
      Bump(s);
      effects->changed = true;
      effects->all_tokens_end = true;
      return absl::OkStatus();
    case R::kAuthenticate: {
      if (!s->enabled()) return ErrAuthNotEnabled();
      const authpb::User* u = v->FindUser(req.authenticate().name());
      if (u == nullptr || (u->has_options() && u->options().no_password())) return ErrAuthFailed();
      result->authenticate.set_token(token);
      effects->token_user = u->name();
      return absl::OkStatus();
    }
    case R::kUserAdd: {
      const internal::AuthUserPassword& r = req.user_add();
      if (r.name().empty()) return ErrUserEmpty();
      if (v->FindUser(r.name()) != nullptr) return ErrUserAlreadyExist();
      authpb::User* u = s->add_users();
      u->set_name(r.name());
      if (!r.options().no_password()) u->set_password(r.hashed_password());
      *u->mutable_options() = r.options();
      SortByName(s->mutable_users());
      break;
    }
    case R::kUserDelete: {
      const std::string& name = req.user_delete().name();
      if (s->enabled() && name == kRootUser) return ErrInvalidAuthMgmt();
      if (v->FindUser(name) == nullptr) return ErrUserNotFound();
      auto* users = s->mutable_users();
      users->erase(std::remove_if(users->begin(), users->end(),
                                  [&](const authpb::User& u) { return u.name() == name; }),
                   users->end());
      effects->tokens_of = name;
      break;
    }
    case R::kUserChangePassword: {
      const internal::AuthUserPassword& r = req.user_change_password();
      authpb::User* u = MutableUser(s, r.name());
      if (u == nullptr) return ErrUserNotFound();
      u->set_password(r.hashed_password());
      effects->tokens_of = r.name();
      break;
    }
    case R::kUserGrantRole: {
      const auto& r = req.user_grant_role();
      authpb::User* u = MutableUser(s, r.user());
      if (u == nullptr) return ErrUserNotFound();
      if (r.role() != kRootRole && v->FindRole(r.role()) == nullptr) return ErrRoleNotFound();
      if (HoldsRole(*u, r.role())) return absl::OkStatus();  // etcd: ignored, no new revision
      u->add_roles(r.role());
      std::sort(u->mutable_roles()->begin(), u->mutable_roles()->end());
      break;
    }
    case R::kUserRevokeRole: {
      const auto& r = req.user_revoke_role();
      if (s->enabled() && r.name() == kRootUser && r.role() == kRootRole) {
        return ErrInvalidAuthMgmt();
      }
      authpb::User* u = MutableUser(s, r.name());
      if (u == nullptr) return ErrUserNotFound();
      auto* roles = u->mutable_roles();
      auto end = std::remove(roles->begin(), roles->end(), r.role());
      if (end == roles->end()) return ErrRoleNotGranted();
      roles->erase(end, roles->end());
      break;
    }
    case R::kUserGet: {
      const authpb::User* u = v->FindUser(req.user_get().name());
      if (u == nullptr) return ErrUserNotFound();
      for (const std::string& r : u->roles()) result->user_get.add_roles(r);
      return absl::OkStatus();
    }
    case R::kUserList:
      for (const authpb::User& u : s->users()) result->user_list.add_users(u.name());
      return absl::OkStatus();
    case R::kRoleAdd: {
      const std::string& name = req.role_add().name();
      if (name.empty()) return ErrRoleEmpty();
      if (v->FindRole(name) != nullptr) return ErrRoleAlreadyExist();
      s->add_roles()->set_name(name);
      SortByName(s->mutable_roles());
      break;
    }
    case R::kRoleGet: {
      const authpb::Role* r = v->FindRole(req.role_get().role());
      if (r == nullptr) return ErrRoleNotFound();
      for (const authpb::Permission& p : r->keypermission()) *result->role_get.add_perm() = p;
      return absl::OkStatus();
    }
    case R::kRoleList:
      for (const authpb::Role& r : s->roles()) result->role_list.add_roles(r.name());
      return absl::OkStatus();
    case R::kRoleDelete: {
      const std::string& name = req.role_delete().role();
      if (s->enabled() && name == kRootRole) return ErrInvalidAuthMgmt();
      if (v->FindRole(name) == nullptr) return ErrRoleNotFound();
      auto* roles = s->mutable_roles();
      roles->erase(std::remove_if(roles->begin(), roles->end(),
                                  [&](const authpb::Role& r) { return r.name() == name; }),
                   roles->end());
      for (authpb::User& u : *s->mutable_users()) {
        auto* held = u.mutable_roles();
        held->erase(std::remove(held->begin(), held->end(), name), held->end());
      }
      break;
    }
    case R::kRoleGrantPermission: {
      const auto& r = req.role_grant_permission();
      authpb::Role* role = MutableRole(s, r.name());
      if (role == nullptr) return ErrRoleNotFound();
      bool updated = false;
      for (authpb::Permission& p : *role->mutable_keypermission()) {
        if (p.key() == r.perm().key() && p.range_end() == r.perm().range_end()) {
          p.set_permtype(r.perm().permtype());
          updated = true;
        }
      }
      if (!updated) {
        *role->add_keypermission() = r.perm();
        auto* perms = role->mutable_keypermission();
        std::stable_sort(perms->begin(), perms->end(),
                         [](const authpb::Permission& a, const authpb::Permission& b) {
                           return a.key() < b.key();
                         });
      }
      break;
    }
    case R::kRoleRevokePermission: {
      const auto& r = req.role_revoke_permission();
      authpb::Role* role = MutableRole(s, r.role());
      if (role == nullptr) return ErrRoleNotFound();
      auto* perms = role->mutable_keypermission();
      auto end = std::remove_if(perms->begin(), perms->end(), [&](const authpb::Permission& p) {
        return p.key() == r.key() && p.range_end() == r.range_end();
      });
      if (end == perms->end()) return ErrPermissionNotGranted();
      perms->erase(end, perms->end());
      break;
    }
    default:
      return absl::InternalError("not an auth operation");
  }
  // Every change that reaches here can narrow what someone may do: a new revision, so requests
  // checked against the old one are refused (etcd's commitRevision).
  Bump(s);
  effects->changed = true;
  return absl::OkStatus();
}

}  // namespace chainfire::auth
