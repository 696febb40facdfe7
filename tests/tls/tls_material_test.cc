// TLS material: loading and checking certificate, key, CA bundle and CRL files, and reloading
// them without ever giving up the last good set. Certificates are made here by the openssl CLI
// in a temporary directory (no key is committed).
#include "chainfire/tls/tls_material.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "chainfire/tls/cipher_suites.h"
#include "chainfire/tls/live_tls.h"
#include "gtest/gtest.h"
#include "temp_dir.h"

namespace chainfire::tls {
namespace {

using chainfire::testing::TempDir;

class TlsMaterialTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_.path());
    // Two CAs, a server certificate from each, a CRL of CA 1.
    Openssl("req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=ca1 -keyout ca1.key -out ca1.crt");
    Openssl("req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=ca2 -keyout ca2.key -out ca2.crt");
    for (const char* n : {"1", "2"}) {
      Openssl(std::string("req -newkey rsa:2048 -nodes -subj /CN=member") + n + " -keyout m" + n +
              ".key -out m" + n + ".csr");
      Openssl(std::string("x509 -req -in m") + n + ".csr -CA ca" + n + ".crt -CAkey ca" + n +
              ".key -CAcreateserial -days 2 -out m" + n + ".crt");
    }
    Write("ca.conf",
          "[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\ncrlnumber=crlnumber\n"
          "default_md=sha256\ndefault_crl_days=2\n");
    Write("index.txt", "");
    Write("crlnumber", "01\n");
    Openssl("ca -config ca.conf -gencrl -keyfile ca1.key -cert ca1.crt -out ca1.crl");
    // The same CA's CRL once member1's certificate is revoked.
    Openssl("ca -config ca.conf -revoke m1.crt -keyfile ca1.key -cert ca1.crt");
    Openssl("ca -config ca.conf -gencrl -keyfile ca1.key -cert ca1.crt -out ca1-revoked.crl");
    Write("bundle.crt", Read("ca1.crt") + Read("ca2.crt"));
  }

  void Openssl(const std::string& args) {
    const std::string cmd = "cd " + dir_.path() + " && openssl " + args + " >openssl.log 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd << "\n" << Read("openssl.log");
  }
  std::string Path(const std::string& name) { return dir_.path() + "/" + name; }
  std::string Read(const std::string& name) {
    std::ifstream in(Path(name), std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }
  void Write(const std::string& name, const std::string& bytes) {
    std::ofstream(Path(name), std::ios::binary | std::ios::trunc) << bytes;
  }
  TlsFiles Files(const std::string& member, const std::string& ca) {
    return {Path(member + ".crt"), Path(member + ".key"), Path(ca), ""};
  }

  TempDir dir_;
};

TEST_F(TlsMaterialTest, AValidSetLoadsWithEveryCaOfTheBundle) {
  TlsFiles files = Files("m1", "bundle.crt");
  files.crl_file = Path("ca1.crl");
  auto m = LoadTlsMaterial(files);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->subject_cn, "member1");
  ASSERT_EQ(m->ca_subjects.size(), 2u);
  EXPECT_NE(m->ca_subjects[0].find("ca1"), std::string::npos);
  EXPECT_NE(m->ca_subjects[1].find("ca2"), std::string::npos);
}

TEST_F(TlsMaterialTest, BadFilesAreRefusedNamingTheFile) {
  auto refused = [&](const TlsFiles& f, const std::string& expect) {
    auto m = LoadTlsMaterial(f);
    ASSERT_FALSE(m.ok()) << "accepted; expected: " << expect;
    EXPECT_NE(m.status().message().find(expect), std::string::npos) << m.status();
  };
  // A key that is not the certificate's: both files named.
  TlsFiles mismatched{Path("m1.crt"), Path("m2.key"), Path("ca1.crt"), ""};
  refused(mismatched,
          "key file " + Path("m2.key") + " does not match the certificate in " + Path("m1.crt"));
  refused({Path("missing.crt"), Path("m1.key"), "", ""},
          "certificate file " + Path("missing.crt") + ": cannot be read");
  const std::string cert = Read("m1.crt");
  Write("half.crt", cert.substr(0, cert.size() / 2));
  refused({Path("half.crt"), Path("m1.key"), "", ""}, "certificate file " + Path("half.crt"));
  // A bundle whose second CA was cut short: not a bundle of one.
  const std::string bundle = Read("bundle.crt");
  Write("cut.crt", bundle.substr(0, bundle.size() - 200));
  refused(Files("m1", "cut.crt"), "2 certificates begin but 1 parse");
  Write("garbage.crl", "not a crl");
  TlsFiles bad_crl = Files("m1", "ca1.crt");
  bad_crl.crl_file = Path("garbage.crl");
  refused(bad_crl, "CRL file " + Path("garbage.crl"));
}

TEST_F(TlsMaterialTest, RefreshTakesAValidNewSetAndKeepsTheLastGoodOne) {
  Write("live.crt", Read("m1.crt"));
  Write("live.key", Read("m1.key"));
  Write("live-ca.crt", Read("ca1.crt"));
  auto source =
      TlsMaterialSource::Open({Path("live.crt"), Path("live.key"), Path("live-ca.crt"), ""});
  ASSERT_TRUE(source.ok()) << source.status();
  TlsMaterialSource& s = **source;
  EXPECT_EQ(s.generation(), 1u);
  ASSERT_TRUE(s.Refresh().ok());
  EXPECT_EQ(s.generation(), 1u) << "unchanged files change nothing";

  // A half-written certificate in place: refused, the last good set stays.
  const std::string good_cert = Read("m1.crt");
  Write("live.crt", good_cert.substr(0, good_cert.size() / 2));
  EXPECT_FALSE(s.Refresh().ok());
  EXPECT_EQ(s.generation(), 1u);
  EXPECT_EQ(s.Current()->cert_pem, good_cert);
  // The new certificate written before its key: mismatched, refused, last good kept.
  Write("live.crt", Read("m2.crt"));
  absl::Status mismatch = s.Refresh();
  EXPECT_NE(mismatch.message().find("does not match"), std::string::npos) << mismatch;
  EXPECT_EQ(s.Current()->subject_cn, "member1");
  // Then its key, and a bundle of both CAs: taken.
  Write("live.key", Read("m2.key"));
  Write("live-ca.crt", Read("bundle.crt"));
  ASSERT_TRUE(s.Refresh().ok());
  EXPECT_EQ(s.generation(), 2u);
  EXPECT_EQ(s.Current()->subject_cn, "member2");
  EXPECT_EQ(s.Current()->ca_subjects.size(), 2u);
}

TEST_F(TlsMaterialTest, OpenRefusesAnInvalidSet) {
  auto source = TlsMaterialSource::Open({Path("m1.crt"), Path("m2.key"), "", ""});
  EXPECT_FALSE(source.ok());
}

TEST_F(TlsMaterialTest, ACrlListsTheCertificatesItRevokesAndMustBeSignedByATrustedCa) {
  TlsFiles files = Files("m2", "bundle.crt");
  files.crl_file = Path("ca1.crl");
  auto empty = LoadTlsMaterial(files);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(CheckNotRevoked(*empty, Read("m1.crt")).ok()) << "an empty CRL revokes nothing";

  files.crl_file = Path("ca1-revoked.crl");
  auto revoking = LoadTlsMaterial(files);
  ASSERT_TRUE(revoking.ok()) << revoking.status();
  ASSERT_EQ(revoking->revoked.size(), 1u);
  absl::Status refused = CheckNotRevoked(*revoking, Read("m1.crt"));
  EXPECT_TRUE(absl::IsPermissionDenied(refused)) << refused;
  EXPECT_NE(refused.message().find("CN=member1"), std::string::npos) << refused;
  EXPECT_TRUE(CheckNotRevoked(*revoking, Read("m2.crt")).ok()) << "another CA's certificate";
  EXPECT_FALSE(CheckNotRevoked(*revoking, "garbage").ok()) << "an unparsable certificate";

  // The CRL of a CA the bundle does not hold is refused, naming the file.
  auto untrusted =
      LoadTlsMaterial({Path("m2.crt"), Path("m2.key"), Path("ca2.crt"), Path("ca1-revoked.crl")});
  ASSERT_FALSE(untrusted.ok());
  EXPECT_NE(untrusted.status().message().find("not signed by a CA"), std::string::npos)
      << untrusted.status();
}

TEST_F(TlsMaterialTest, LiveTlsCopiesOnlyValidSetsForGrpc) {
  Write("live.crt", Read("m1.crt"));
  Write("live.key", Read("m1.key"));
  Write("live-ca.crt", Read("ca1.crt"));
  const std::string copies = Path("copies");
  auto live = LiveTls::Open(
      {"client", {Path("live.crt"), Path("live.key"), Path("live-ca.crt"), ""}, copies, true});
  ASSERT_TRUE(live.ok()) << live.status();
  ASSERT_NE((*live)->ServerCredentials(), nullptr);
  ASSERT_NE((*live)->ChannelCredentials(), nullptr);
  auto copy = [&](const std::string& name) { return Read("copies/" + name); };
  EXPECT_EQ(copy("identity.pem"), Read("m1.key") + "\n" + Read("m1.crt"));
  EXPECT_EQ(copy("ca.pem"), Read("ca1.crt"));
  EXPECT_EQ(std::filesystem::status(copies).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_all);

  // A truncated key in place: refused, the copies keep the last good pair.
  Write("live.key", Read("m2.key").substr(0, 100));
  EXPECT_FALSE((*live)->Reload().ok());
  EXPECT_EQ(copy("identity.pem"), Read("m1.key") + "\n" + Read("m1.crt"));
  // The new key before its certificate: mismatched, refused.
  Write("live.key", Read("m2.key"));
  EXPECT_FALSE((*live)->Reload().ok());
  EXPECT_EQ(copy("identity.pem"), Read("m1.key") + "\n" + Read("m1.crt"));
  // Then the certificate and a bundle: copied, both.
  Write("live.crt", Read("m2.crt"));
  Write("live-ca.crt", Read("bundle.crt"));
  ASSERT_TRUE((*live)->Reload().ok());
  EXPECT_EQ((*live)->generation(), 2u);
  EXPECT_EQ(copy("identity.pem"), Read("m2.key") + "\n" + Read("m2.crt"));
  EXPECT_EQ(copy("ca.pem"), Read("bundle.crt"));
}

TEST(CipherSuites, EtcdNamesMapToOpenSslNamesAndUnknownOnesAreNamed) {
  auto list = OpenSslCipherList(
      "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(*list, "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305");
  auto bad = OpenSslCipherList("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_NULL_WITH_NULL_NULL");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("unknown cipher suite TLS_NULL_WITH_NULL_NULL"),
            std::string::npos);
}

}  // namespace
}  // namespace chainfire::tls
