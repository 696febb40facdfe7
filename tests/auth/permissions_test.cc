// The permission decision (KeyRanges over merged role grants) against a plain reference: the
// request is walked from its start, jumping to the end of any grant that contains the current
// key, until it passes the request's end. Random roles, grants and requests, many seeds; a
// failing seed is printed and replays alone.
#include "chainfire/auth/permissions.h"

#include <optional>
#include <string>
#include <vector>

#include "chainfire/common/random.h"
#include "gtest/gtest.h"

namespace chainfire::auth {
namespace {

struct Grant {
  std::string key, range_end;
};

// [begin, end) of etcd's conventions; nullopt end = unbounded; nullopt result = empty range.
std::optional<std::pair<std::string, std::optional<std::string>>> Span(const Grant& g) {
  if (g.range_end.empty()) return std::make_pair(g.key, std::optional(g.key + '\0'));
  if (g.range_end == std::string(1, '\0'))
    return std::make_pair(g.key, std::optional<std::string>());
  if (g.range_end <= g.key) return std::nullopt;
  return std::make_pair(g.key, std::optional(g.range_end));
}

bool ReferenceCovers(const std::vector<Grant>& grants, Grant request) {
  auto want = Span(request);
  if (!want) want = Span(Grant{request.key, ""});
  std::string cur = want->first;
  for (size_t steps = 0; steps <= grants.size(); ++steps) {
    bool moved = false;
    for (const Grant& g : grants) {
      auto s = Span(g);
      if (!s || s->first > cur || (s->second && *s->second <= cur)) continue;
      if (!s->second) return true;  // unbounded grant from before cur
      if (want->second && *s->second >= *want->second) return true;
      cur = *s->second;
      moved = true;
      break;
    }
    if (!moved) return false;
  }
  return false;
}

std::string RandomKey(Random& rng) {
  std::string k;
  const size_t n = rng.Uniform(4);
  for (size_t i = 0; i < n; ++i) k.push_back("ab\0c"[rng.Uniform(4)]);
  return k;
}

Grant RandomGrant(Random& rng) {
  Grant g{RandomKey(rng), ""};
  switch (rng.Uniform(4)) {
    case 0:
      break;  // one key
    case 1:
      g.range_end = std::string(1, '\0');  // from key
      break;
    default:
      g.range_end = RandomKey(rng);  // a range (possibly empty)
      if (g.range_end.empty()) g.range_end = "c";
  }
  return g;
}

TEST(Permissions, MatchesThePlainReferenceOnRandomGrantsAndRequests) {
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    Random rng(seed);
    authpb::Role role;
    std::vector<Grant> read;
    const size_t n = rng.Uniform(6);
    for (size_t i = 0; i < n; ++i) {
      Grant g = RandomGrant(rng);
      authpb::Permission* p = role.add_keypermission();
      p->set_key(g.key);
      p->set_range_end(g.range_end);
      p->set_permtype(rng.Uniform(2) ? authpb::Permission::READ : authpb::Permission::READWRITE);
      read.push_back(g);
    }
    const UserPermissions perms = MergePermissions({&role});
    for (int q = 0; q < 50; ++q) {
      const Grant request = RandomGrant(rng);
      ASSERT_EQ(perms.read.Covers(request.key, request.range_end), ReferenceCovers(read, request))
          << "seed " << seed << " request [" << request.key << ", " << request.range_end << ")";
    }
  }
}

TEST(Permissions, EtcdsExamples) {
  authpb::Role r;
  auto grant = [&](const std::string& k, const std::string& e, authpb::Permission::Type t) {
    authpb::Permission* p = r.add_keypermission();
    p->set_key(k);
    p->set_range_end(e);
    p->set_permtype(t);
  };
  grant("/app/", "/app0", authpb::Permission::READWRITE);        // --prefix /app/
  grant("/cfg", "", authpb::Permission::READ);                   // one key
  grant("/z", std::string(1, '\0'), authpb::Permission::WRITE);  // --from-key /z
  const UserPermissions p = MergePermissions({&r});
  EXPECT_TRUE(p.read.Covers("/app/x", ""));
  EXPECT_TRUE(p.read.Covers("/app/", "/app0"));
  EXPECT_FALSE(p.read.Covers("/app", "/app0"));  // starts before the grant
  EXPECT_FALSE(p.read.Covers("/app/", std::string(1, '\0')));
  EXPECT_TRUE(p.read.Covers("/cfg", ""));
  EXPECT_FALSE(p.read.Covers("/cfg", "/cfh"));  // more than the one key
  EXPECT_FALSE(p.read.Covers("/cfg/a", ""));
  EXPECT_FALSE(p.write.Covers("/cfg", ""));
  EXPECT_TRUE(p.write.Covers("/zzz", std::string(1, '\0')));
  EXPECT_FALSE(p.read.Covers("/zzz", ""));
  // Two adjacent grants cover the range across them.
  authpb::Role two;
  for (auto [k, e] : {std::pair{"a", "b"}, std::pair{"b", "c"}}) {
    authpb::Permission* q = two.add_keypermission();
    q->set_key(k);
    q->set_range_end(e);
  }
  EXPECT_TRUE(MergePermissions({&two}).read.Covers("a", "c"));
  EXPECT_FALSE(MergePermissions({&two}).read.Covers("a", "d"));
}

}  // namespace
}  // namespace chainfire::auth
