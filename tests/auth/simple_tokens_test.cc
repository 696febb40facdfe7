// Simple tokens: etcd's shape, the TTL counted from the last use, and the ways they end.
#include "chainfire/auth/simple_tokens.h"

#include "gtest/gtest.h"

namespace chainfire::auth {
namespace {

TEST(SimpleTokens, ShapeAndIndex) {
  const std::string prefix = SimpleTokens::NewPrefix();
  ASSERT_EQ(prefix.size(), 16u);
  for (char c : prefix) EXPECT_TRUE(std::isalpha(static_cast<unsigned char>(c))) << prefix;
  EXPECT_NE(SimpleTokens::NewPrefix(), prefix);
  EXPECT_EQ(SimpleTokens::IndexOf(prefix + ".42"), 42u);
  EXPECT_FALSE(SimpleTokens::IndexOf(prefix).has_value());
  EXPECT_FALSE(SimpleTokens::IndexOf("a.b.1").has_value());
  EXPECT_FALSE(SimpleTokens::IndexOf("a.x").has_value());
}

// Registers `token` the way applying its Authenticate entry does.
void Register(SimpleTokens& t, const std::string& token, const std::string& user, int64_t now) {
  t.Assign(SimpleTokens::Key(token), user, now);
}

TEST(SimpleTokens, OnlyTheDigestOfTheRandomPartIsRegistered) {
  const std::string prefix = SimpleTokens::NewPrefix();
  const std::string digest = SimpleTokens::Digest(prefix);
  EXPECT_EQ(digest.size(), 64u);
  EXPECT_EQ(digest.find(prefix), std::string::npos);
  EXPECT_EQ(SimpleTokens::Key(prefix + ".9"), digest + ".9");
  EXPECT_EQ(SimpleTokens::Key("nodot"), "");
  SimpleTokens t(60000);
  Register(t, prefix + ".9", "alice", 0);
  EXPECT_EQ(t.Lookup(prefix + ".9", 1), "alice");
  // What the log and the registry hold is not a token.
  EXPECT_FALSE(t.Lookup(digest + ".9", 1).has_value());
  EXPECT_FALSE(t.Lookup(prefix + ".8", 1).has_value());
}

TEST(SimpleTokens, ExpireAfterTheTtlWithoutUse) {
  SimpleTokens t(1000);
  Register(t, "a.1", "alice", 0);
  EXPECT_EQ(t.Lookup("a.1", 900), "alice");
  EXPECT_EQ(t.Lookup("a.1", 1800), "alice") << "each use renews it";
  EXPECT_FALSE(t.Lookup("a.1", 2801).has_value());
  Register(t, "b.2", "bob", 0);
  t.Expire(999);
  EXPECT_EQ(t.size(), 1u);
  t.Expire(1001);
  EXPECT_EQ(t.size(), 0u);
}

TEST(SimpleTokens, EndWithTheirUserOrAll) {
  SimpleTokens t(60000);
  Register(t, "a.1", "alice", 0);
  Register(t, "a.2", "alice", 0);
  Register(t, "b.3", "bob", 0);
  t.ForgetUser("alice");
  EXPECT_FALSE(t.Lookup("a.1", 1).has_value());
  EXPECT_EQ(t.Lookup("b.3", 1), "bob");
  t.Clear();
  EXPECT_FALSE(t.Lookup("b.3", 1).has_value());
  EXPECT_FALSE(t.Lookup("never.9", 1).has_value());
}

}  // namespace
}  // namespace chainfire::auth
