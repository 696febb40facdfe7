// The auth store's operations as etcd 3.4 applies them: errors, who may do what, revisions,
// token effects, and the persisted record; bcrypt hashing and checking.
#include "chainfire/auth/auth_store.h"

#include "chainfire/auth/errors.h"
#include "chainfire/auth/password.h"
#include "gtest/gtest.h"

namespace chainfire::auth {
namespace {

class Store {
 public:
  absl::Status Do(internal::Request r, const Caller& who = Caller{}) {
    last = AuthResult();
    effects = AuthEffects();
    return store.Apply(r, who, "tok.1", &last, &effects);
  }
  Caller As(const std::string& user) { return Caller{user, store.view()->revision()}; }
  AuthStore store;
  AuthResult last;
  AuthEffects effects;
};

internal::Request UserAdd(const std::string& name, bool no_password = false) {
  internal::Request r;
  r.mutable_user_add()->set_name(name);
  r.mutable_user_add()->set_hashed_password("$2b$04$hash");
  r.mutable_user_add()->mutable_options()->set_no_password(no_password);
  return r;
}
internal::Request Grant(const std::string& user, const std::string& role) {
  internal::Request r;
  r.mutable_user_grant_role()->set_user(user);
  r.mutable_user_grant_role()->set_role(role);
  return r;
}
internal::Request RoleAdd(const std::string& name) {
  internal::Request r;
  r.mutable_role_add()->set_name(name);
  return r;
}
internal::Request Enable() {
  internal::Request r;
  r.mutable_auth_enable();
  return r;
}
internal::Request Perm(const std::string& role, const std::string& key, const std::string& end,
                       authpb::Permission::Type t) {
  internal::Request r;
  r.mutable_role_grant_permission()->set_name(role);
  r.mutable_role_grant_permission()->mutable_perm()->set_key(key);
  r.mutable_role_grant_permission()->mutable_perm()->set_range_end(end);
  r.mutable_role_grant_permission()->mutable_perm()->set_permtype(t);
  return r;
}

TEST(AuthStore, EnablingNeedsARootUserWithTheRootRole) {
  Store s;
  EXPECT_EQ(s.Do(Enable()), ErrRootUserNotExist());
  ASSERT_TRUE(s.Do(UserAdd("root")).ok());
  EXPECT_EQ(s.Do(Enable()), ErrRootRoleNotExist());
  ASSERT_TRUE(s.Do(Grant("root", "root")).ok());  // the root role need not exist as a role
  const uint64_t rev = s.store.view()->revision();
  ASSERT_TRUE(s.Do(Enable()).ok());
  EXPECT_TRUE(s.store.enabled());
  EXPECT_EQ(s.store.view()->revision(), rev) << "enabling does not bump the revision (etcd)";
  // Now every management call needs root.
  EXPECT_EQ(s.Do(RoleAdd("r")), ErrUserEmpty());
  ASSERT_TRUE(s.Do(UserAdd("alice")).code() == absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(s.Do(UserAdd("alice"), s.As("root")).ok());
  EXPECT_EQ(s.Do(RoleAdd("r"), s.As("alice")), ErrPermissionDenied());
  EXPECT_EQ(s.Do(RoleAdd("r"), s.As("ghost")), ErrUserNotFound());
}

TEST(AuthStore, UsersAndRolesFollowEtcdsRules) {
  Store s;
  EXPECT_EQ(s.Do(UserAdd("")), ErrUserEmpty());
  ASSERT_TRUE(s.Do(UserAdd("u")).ok());
  EXPECT_EQ(s.Do(UserAdd("u")), ErrUserAlreadyExist());
  EXPECT_EQ(s.Do(RoleAdd("")), ErrRoleEmpty());
  ASSERT_TRUE(s.Do(RoleAdd("r")).ok());
  EXPECT_EQ(s.Do(RoleAdd("r")), ErrRoleAlreadyExist());
  EXPECT_EQ(s.Do(Grant("u", "nope")), ErrRoleNotFound());
  EXPECT_EQ(s.Do(Grant("nope", "r")), ErrUserNotFound());
  ASSERT_TRUE(s.Do(Grant("u", "r")).ok());
  const uint64_t rev = s.store.view()->revision();
  ASSERT_TRUE(s.Do(Grant("u", "r")).ok());
  EXPECT_EQ(s.store.view()->revision(), rev) << "a repeated grant changes nothing";
  EXPECT_EQ(s.Do(Perm("nope", "a", "", authpb::Permission::READ)), ErrRoleNotFound());
  ASSERT_TRUE(s.Do(Perm("r", "b", "", authpb::Permission::READ)).ok());
  ASSERT_TRUE(s.Do(Perm("r", "a", "", authpb::Permission::READ)).ok());
  ASSERT_TRUE(s.Do(Perm("r", "a", "", authpb::Permission::WRITE)).ok());  // updates in place
  const authpb::Role* role = s.store.view()->FindRole("r");
  ASSERT_EQ(role->keypermission_size(), 2);
  EXPECT_EQ(role->keypermission(0).key(), "a");
  EXPECT_EQ(role->keypermission(0).permtype(), authpb::Permission::WRITE);
  internal::Request revoke;
  revoke.mutable_role_revoke_permission()->set_role("r");
  revoke.mutable_role_revoke_permission()->set_key("zz");
  EXPECT_EQ(s.Do(revoke), ErrPermissionNotGranted());
  internal::Request unrole;
  unrole.mutable_user_revoke_role()->set_name("u");
  unrole.mutable_user_revoke_role()->set_role("other");
  EXPECT_EQ(s.Do(unrole), ErrRoleNotGranted());
  // Deleting a role takes it from its users.
  internal::Request del;
  del.mutable_role_delete()->set_role("r");
  ASSERT_TRUE(s.Do(del).ok());
  EXPECT_EQ(s.store.view()->FindUser("u")->roles_size(), 0);
  // Lists are sorted by name.
  ASSERT_TRUE(s.Do(UserAdd("a")).ok());
  internal::Request list;
  list.mutable_user_list();
  ASSERT_TRUE(s.Do(list).ok());
  ASSERT_EQ(s.last.user_list.users_size(), 2);
  EXPECT_EQ(s.last.user_list.users(0), "a");
}

TEST(AuthStore, RootCannotBeRemovedWhileAuthIsOnAndTokensFollowChanges) {
  Store s;
  ASSERT_TRUE(s.Do(UserAdd("root")).ok());
  ASSERT_TRUE(s.Do(Grant("root", "root")).ok());
  ASSERT_TRUE(s.Do(UserAdd("alice")).ok());
  ASSERT_TRUE(s.Do(Enable()).ok());
  const Caller root = s.As("root");
  internal::Request del;
  del.mutable_user_delete()->set_name("root");
  EXPECT_EQ(s.Do(del, root), ErrInvalidAuthMgmt());
  internal::Request unroot;
  unroot.mutable_user_revoke_role()->set_name("root");
  unroot.mutable_user_revoke_role()->set_role("root");
  EXPECT_EQ(s.Do(unroot, root), ErrInvalidAuthMgmt());
  internal::Request login;
  login.mutable_authenticate()->set_name("alice");
  ASSERT_TRUE(s.Do(login).ok());
  EXPECT_EQ(s.last.authenticate.token(), "tok.1");
  EXPECT_EQ(s.effects.token_user, "alice");
  internal::Request passwd;
  passwd.mutable_user_change_password()->set_name("alice");
  passwd.mutable_user_change_password()->set_hashed_password("$2b$04$other");
  ASSERT_TRUE(s.Do(passwd, s.As("root")).ok());
  EXPECT_EQ(s.effects.tokens_of, "alice");
  ASSERT_TRUE(s.Do(UserAdd("nopw", true), s.As("root")).ok());
  login.mutable_authenticate()->set_name("nopw");
  EXPECT_EQ(s.Do(login), ErrAuthFailed());
  internal::Request disable;
  disable.mutable_auth_disable();
  ASSERT_TRUE(s.Do(disable, s.As("root")).ok());
  EXPECT_TRUE(s.effects.all_tokens_end);
  login.mutable_authenticate()->set_name("alice");
  EXPECT_EQ(s.Do(login), ErrAuthNotEnabled());
}

TEST(AuthStore, PermissionChecksUseTheRevisionAndTheRootRole) {
  Store s;
  ASSERT_TRUE(s.Do(UserAdd("root")).ok());
  ASSERT_TRUE(s.Do(Grant("root", "root")).ok());
  ASSERT_TRUE(s.Do(UserAdd("alice")).ok());
  ASSERT_TRUE(s.Do(RoleAdd("rw")).ok());
  ASSERT_TRUE(s.Do(Perm("rw", "/app/", "/app0", authpb::Permission::READWRITE)).ok());
  ASSERT_TRUE(s.Do(Grant("alice", "rw")).ok());
  EXPECT_TRUE(s.store.view()->CheckKeys(Caller{}, "x", "", true).ok()) << "auth off";
  ASSERT_TRUE(s.Do(Enable()).ok());
  auto v = s.store.view();
  const Caller alice = s.As("alice");
  EXPECT_TRUE(v->CheckKeys(alice, "/app/x", "", true).ok());
  EXPECT_EQ(v->CheckKeys(alice, "/other", "", false), ErrPermissionDenied());
  EXPECT_EQ(v->CheckKeys(Caller{}, "/app/x", "", false), ErrUserEmpty());
  EXPECT_EQ(v->CheckKeys(Caller{"ghost", v->revision()}, "/app/x", "", false),
            ErrPermissionDenied());
  EXPECT_TRUE(v->CheckKeys(s.As("root"), "", std::string(1, '\0'), true).ok());
  // A change after the caller's check: its revision is old.
  ASSERT_TRUE(s.Do(RoleAdd("other"), s.As("root")).ok());
  EXPECT_EQ(s.store.view()->CheckKeys(alice, "/app/x", "", true), ErrAuthOldRevision());
  // The record restores the same store.
  AuthStore copy;
  ASSERT_TRUE(copy.Load(s.store.Record()).ok());
  EXPECT_TRUE(copy.enabled());
  EXPECT_EQ(copy.view()->revision(), s.store.view()->revision());
  EXPECT_TRUE(copy.view()->CheckKeys(s.As("alice"), "/app/y", "", true).ok());
  EXPECT_EQ(copy.Load("\xff garbage").code(), absl::StatusCode::kDataLoss);
}

TEST(Password, BcryptHashesAndChecks) {
  auto hash = HashPassword("s3cret", kMinBcryptCost);
  ASSERT_TRUE(hash.ok()) << hash.status();
  EXPECT_EQ(hash->rfind("$2b$04$", 0), 0u) << *hash;
  EXPECT_TRUE(CheckPassword("s3cret", *hash));
  EXPECT_FALSE(CheckPassword("s3cret!", *hash));
  EXPECT_FALSE(CheckPassword("", *hash));
  EXPECT_FALSE(CheckPassword("s3cret", "not a hash"));
  EXPECT_NE(*HashPassword("s3cret", kMinBcryptCost), *hash) << "a fresh salt each time";
  EXPECT_FALSE(HashPassword("x", 3).ok());
  EXPECT_FALSE(HashPassword(std::string("a\0b", 3), kMinBcryptCost).ok());
}

}  // namespace
}  // namespace chainfire::auth
