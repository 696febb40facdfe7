// JWT tokens through libjwt: option parsing with etcd's errors, sign and verify, expiry, and
// the forgeries a verifier must refuse (another key, another algorithm, "none", tampering).
#include "chainfire/auth/jwt_tokens.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "gtest/gtest.h"

namespace chainfire::auth {
namespace {

// Writes a fresh key pair (RSA 2048 or EC P-256) as PEM files; returns (private, public) paths.
std::pair<std::string, std::string> KeyPair(const std::string& dir, const std::string& name,
                                            bool ec) {
  EVP_PKEY* key = ec ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);
  EXPECT_NE(key, nullptr);
  const std::string priv = dir + "/" + name + ".key", pub = dir + "/" + name + ".pub";
  FILE* f = std::fopen(priv.c_str(), "w");
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  f = std::fopen(pub.c_str(), "w");
  PEM_write_PUBKEY(f, key);
  std::fclose(f);
  EVP_PKEY_free(key);
  return {priv, pub};
}

class JwtTokensTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("jwt-test-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Option(const std::pair<std::string, std::string>& k, const std::string& method,
                     const std::string& extra = "") {
    return "jwt,pub-key=" + k.second + ",priv-key=" + k.first + ",sign-method=" + method + extra;
  }
  std::filesystem::path dir_;
};

TEST_F(JwtTokensTest, SignsAndVerifiesWithRsaAndEc) {
  for (auto [method, ec] : {std::pair{"RS256", false}, std::pair{"ES256", true}}) {
    auto keys = KeyPair(dir_, method, ec);
    auto t = JwtTokens::FromOption(Option(keys, method, ",ttl=10m"));
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ((*t)->ttl_seconds(), 600);
    auto token = (*t)->Sign("alice", 7, 1000);
    ASSERT_TRUE(token.ok()) << token.status();
    auto claims = (*t)->Verify(*token, 1000 + 599);
    ASSERT_TRUE(claims.has_value()) << method;
    EXPECT_EQ(claims->user, "alice");
    EXPECT_EQ(claims->revision, 7u);
    EXPECT_FALSE((*t)->Verify(*token, 1000 + 600).has_value()) << "expired";
    std::string tampered = *token;
    tampered[tampered.find('.') + 3] ^= 1;
    EXPECT_FALSE((*t)->Verify(tampered, 1000).has_value());
  }
}

TEST_F(JwtTokensTest, RefusesForeignKeysOtherAlgorithmsAndNone) {
  auto mine = KeyPair(dir_, "mine", false), theirs = KeyPair(dir_, "theirs", false);
  auto t = JwtTokens::FromOption(Option(mine, "RS256"));
  auto other = JwtTokens::FromOption(Option(theirs, "RS256"));
  ASSERT_TRUE(t.ok() && other.ok());
  EXPECT_FALSE((*t)->Verify(*(*other)->Sign("root", 1, 0), 0).has_value());
  // "alg":"none" with the same claims.
  const std::string none =
      "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
      "eyJ1c2VybmFtZSI6InJvb3QiLCJyZXZpc2lvbiI6MSwiZXhwIjo5OTk5OTk5OTk5fQ.";
  EXPECT_FALSE((*t)->Verify(none, 0).has_value());
  // HS256 keyed with the public key (the classic confusion) is another algorithm: refused.
  std::FILE* f = std::fopen(mine.second.c_str(), "r");
  std::string pub(4096, '\0');
  pub.resize(std::fread(pub.data(), 1, pub.size(), f));
  std::fclose(f);
  const std::string secret_path = (dir_ / "secret").string();
  f = std::fopen(secret_path.c_str(), "w");
  std::fwrite(pub.data(), 1, pub.size(), f);
  std::fclose(f);
  auto hmac = JwtTokens::FromOption("jwt,priv-key=" + secret_path + ",sign-method=HS256");
  ASSERT_TRUE(hmac.ok()) << hmac.status();
  EXPECT_FALSE((*t)->Verify(*(*hmac)->Sign("root", 1, 0), 0).has_value());
  EXPECT_FALSE((*t)->Verify("garbage", 0).has_value());
  EXPECT_FALSE((*t)->Verify("a.b.c", 0).has_value());
}

TEST_F(JwtTokensTest, OptionErrorsAreEtcds) {
  auto a = KeyPair(dir_, "a", false), b = KeyPair(dir_, "b", false);
  EXPECT_EQ(JwtTokens::FromOption("jwt,pub-key=" + a.second).status().message(),
            "auth: invalid auth signature method");
  EXPECT_EQ(JwtTokens::FromOption("jwt,sign-method=RS256").status().message(),
            "auth: missing key data");
  EXPECT_EQ(JwtTokens::FromOption("jwt,pub-key=" + a.second + ",priv-key=" + b.first +
                                  ",sign-method=RS256")
                .status()
                .message(),
            "auth: public and private keys don't match");
  EXPECT_EQ(JwtTokens::FromOption("jwt,nonsense").status().message(), "auth: invalid auth options");
  EXPECT_EQ(JwtTokens::FromOption(Option(a, "RS256", ",ttl=soon")).status().message(),
            "auth: invalid auth options");
  // Verify-only: a member with the public key alone checks tokens but signs none.
  auto signer = JwtTokens::FromOption(Option(a, "RS256"));
  auto verifier = JwtTokens::FromOption("jwt,pub-key=" + a.second + ",sign-method=RS256");
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  EXPECT_FALSE((*verifier)->Sign("x", 1, 0).ok());
  EXPECT_TRUE((*verifier)->Verify(*(*signer)->Sign("x", 1, 0), 0).has_value());
}

}  // namespace
}  // namespace chainfire::auth
