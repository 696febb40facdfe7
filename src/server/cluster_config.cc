#include "chainfire/server/cluster_config.h"

#include <algorithm>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace chainfire::server {

namespace {
uint64_t Fnv64(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h == 0 ? 1 : h;
}
}  // namespace

std::string HexId(uint64_t id) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(id));
  return buf;
}

const MemberSpec* ClusterSpec::Find(const std::string& name) const {
  for (const MemberSpec& m : members) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

const MemberSpec* ClusterSpec::FindId(uint64_t id) const {
  for (const MemberSpec& m : members) {
    if (m.id == id) return &m;
  }
  return nullptr;
}

std::string ClusterSpec::Describe() const {
  std::string out = absl::StrCat("cluster ", HexId(cluster_id), " (token '", token, "'):");
  for (const MemberSpec& m : members) {
    absl::StrAppend(&out, " ", m.name, "=", HexId(m.id), " ", absl::StrJoin(m.peer_urls, ","), ";");
  }
  return out;
}

void ClusterSpec::SaltClusterId(const std::string& backup_sha256_hex) {
  cluster_id = Fnv64(absl::StrCat("chainfire-restored", std::string(1, '\0'), HexId(cluster_id),
                                  std::string(1, '\0'), backup_sha256_hex));
  if (cluster_id == 0) cluster_id = 1;
}

std::string IdentityRecord(const ClusterSpec& spec, uint64_t self) {
  return absl::StrCat("member ", HexId(self), " of ", spec.Describe());
}

backup::BackupHeader MembershipHeader(const ClusterSpec& spec) {
  backup::BackupHeader h;
  h.set_cluster_id(spec.cluster_id);
  for (const MemberSpec& m : spec.members) {
    backup::BackupMember* bm = h.add_members();
    bm->set_name(m.name);
    bm->set_id(m.id);
    for (const std::string& u : m.peer_urls) bm->add_peer_urls(u);
  }
  return h;
}

absl::StatusOr<std::vector<std::string>> ParseUrls(const std::string& urls,
                                                   const std::string& flag) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(urls, ',', absl::SkipWhitespace())) {
    std::string url(absl::StripAsciiWhitespace(part));
    if (!absl::StartsWith(url, "http://") && !absl::StartsWith(url, "https://")) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": ", url, ": expected a URL like http://127.0.0.1:2379"));
    }
    const std::string host_port = HostPort(url);
    const size_t colon = host_port.rfind(':');
    if (colon == std::string::npos || colon + 1 == host_port.size() ||
        host_port.find('/') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": ", url, ": expected http://host:port"));
    }
    int port = 0;
    if (!absl::SimpleAtoi(host_port.substr(colon + 1), &port) || port <= 0 || port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": ", url, ": bad port"));
    }
    out.push_back(url);
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(flag, ": no URL given"));
  return out;
}

std::string MemberSpec::DialAddress() const {
  return dial_override.empty() ? HostPort(peer_urls[0]) : dial_override;
}

std::string HostPort(const std::string& url) {
  absl::string_view v = url;
  if (!absl::ConsumePrefix(&v, "http://")) absl::ConsumePrefix(&v, "https://");
  absl::ConsumeSuffix(&v, "/");
  return std::string(v);
}

absl::StatusOr<ClusterSpec> ParseInitialCluster(const std::string& initial_cluster,
                                                const std::string& token) {
  ClusterSpec spec;
  spec.token = token;
  for (absl::string_view part : absl::StrSplit(initial_cluster, ',', absl::SkipWhitespace())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(part, absl::MaxSplits('=', 1));
    if (kv.first.empty() || kv.second.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--initial-cluster: '", part, "': expected name=http://host:port"));
    }
    auto urls = ParseUrls(kv.second, "--initial-cluster");
    if (!urls.ok()) return urls.status();
    MemberSpec* m = nullptr;
    for (MemberSpec& existing : spec.members) {
      if (existing.name == kv.first) m = &existing;
    }
    if (m == nullptr) {
      spec.members.push_back(MemberSpec{kv.first, {}, 0});
      m = &spec.members.back();
    }
    m->peer_urls.push_back((*urls)[0]);
  }
  if (spec.members.empty()) {
    return absl::InvalidArgumentError("--initial-cluster: no member given");
  }
  std::set<uint64_t> ids;
  std::set<std::string> all_urls;
  for (MemberSpec& m : spec.members) {
    std::vector<std::string> sorted = m.peer_urls;
    std::sort(sorted.begin(), sorted.end());
    for (const std::string& u : sorted) {
      if (!all_urls.insert(u).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("--initial-cluster: peer URL ", u, " is listed twice"));
      }
    }
    m.id = Fnv64(absl::StrCat("chainfire-member", std::string(1, '\0'), token, std::string(1, '\0'),
                              m.name, std::string(1, '\0'), absl::StrJoin(sorted, ",")));
    ids.insert(m.id);
  }
  std::vector<std::string> hex;
  for (uint64_t id : ids) hex.push_back(HexId(id));
  spec.cluster_id = Fnv64(absl::StrCat("chainfire-cluster", std::string(1, '\0'), token,
                                       std::string(1, '\0'), absl::StrJoin(hex, ",")));
  return spec;
}

}  // namespace chainfire::server
