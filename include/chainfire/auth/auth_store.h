// etcd's v3 auth store, as replicated state: whether auth is on, its revision (bumped by every
// change that can narrow a permission), users (bcrypt hashes, roles) and roles (key-range
// permissions). Every member applies the same auth operations from the Raft log in the same
// order (AuthStore::Apply) and persists the whole store as one record (internal::AuthState),
// which Raft snapshots, backups and restores carry. Permission decisions follow etcd 3.4
// (docs/security.md, "Authentication and authorization").
//
// Thread-safety: Apply and Load run on the member's owner thread. view() and enabled() are safe
// from any thread: a view is an immutable snapshot, replaced (never changed) by each Apply.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "chainfire/auth/permissions.h"
#include "chainfire/internal.pb.h"
#include "etcd/rpc.pb.h"

namespace chainfire::auth {

inline constexpr char kRootUser[] = "root";
inline constexpr char kRootRole[] = "root";

// Who a request comes from: the user and the auth revision its permissions are checked
// against. An empty user (revision 0) is nobody: refused with ErrUserEmpty while auth is on.
struct Caller {
  std::string user;
  uint64_t revision = 0;
};

// The auth store at one revision, with every user's merged permissions.
class AuthView {
 public:
  explicit AuthView(internal::AuthState state);
  bool enabled() const { return state_.enabled(); }
  uint64_t revision() const { return state_.revision(); }
  const internal::AuthState& state() const { return state_; }
  const authpb::User* FindUser(const std::string& name) const;
  const authpb::Role* FindRole(const std::string& name) const;
  bool HasRole(const std::string& user, const std::string& role) const;

  // etcd's isOpPermitted for [key, range_end) (etcd's range conventions): OK while auth is off;
  // ErrUserEmpty for nobody; ErrAuthOldRevision when the caller's revision is behind this one;
  // ErrPermissionDenied for an unknown user or one whose roles do not cover the range (the
  // root role covers everything).
  absl::Status CheckKeys(const Caller& caller, const std::string& key, const std::string& range_end,
                         bool write) const;
  // etcd's checkTxnReqsPermission: READ on every compared key and range, WRITE on every put and
  // delete (READ too when it asks for the previous values), nested txns included (etcd 3.4
  // skips them). The first refusal, or OK.
  absl::Status CheckTxn(const Caller& caller, const etcdserverpb::TxnRequest& txn) const;
  // etcd's IsAdminPermitted: OK while auth is off; ErrUserEmpty, ErrUserNotFound, or
  // ErrPermissionDenied unless the user holds the root role.
  absl::Status CheckAdmin(const Caller& caller) const;

 private:
  internal::AuthState state_;
  std::map<std::string, int> users_;  // name -> index in state_.users()
  std::map<std::string, int> roles_;  // name -> index in state_.roles()
  std::map<std::string, UserPermissions> permissions_;
};

// What an applied auth operation answers (the parts that carry data).
struct AuthResult {
  etcdserverpb::AuthenticateResponse authenticate;
  etcdserverpb::AuthUserGetResponse user_get;
  etcdserverpb::AuthUserListResponse user_list;
  etcdserverpb::AuthRoleGetResponse role_get;
  etcdserverpb::AuthRoleListResponse role_list;
};

// What an applied operation changed besides its answer.
struct AuthEffects {
  bool changed = false;         // the store changed: persist record()
  std::string tokens_of;        // a user whose tokens end (deleted, password changed)
  bool all_tokens_end = false;  // auth was disabled
  std::string token_user;       // Authenticate: the user the token is for
};

class AuthStore {
 public:
  AuthStore();
  // Replaces the store with a persisted record ("" = the empty store: auth off, no users).
  absl::Status Load(const std::string& record);
  // The persisted record of the current store.
  std::string Record() const;

  // Any thread.
  std::shared_ptr<const AuthView> view() const;
  bool enabled() const { return enabled_.load(std::memory_order_acquire); }
  uint64_t revision() const { return revision_.load(std::memory_order_acquire); }

  // Whether `req` carries an auth operation (internal::Request fields 20..35).
  static bool IsAuthOp(const internal::Request& req);
  // Applies the auth operation of `req` from `caller` (etcd's checks, errors and effects).
  // `token` is the token Authenticate registers (made from the request and the entry index).
  absl::Status Apply(const internal::Request& req, const Caller& caller, const std::string& token,
                     AuthResult* result, AuthEffects* effects);

 private:
  void Publish(internal::AuthState state);
  absl::Status ApplyOp(const internal::Request& req, const Caller& caller, const std::string& token,
                       internal::AuthState* s, AuthResult* result, AuthEffects* effects);

  mutable std::mutex mu_;
  std::shared_ptr<const AuthView> view_;  // guarded by mu_
  std::atomic<bool> enabled_{false};
  std::atomic<uint64_t> revision_{0};
};

}  // namespace chainfire::auth
