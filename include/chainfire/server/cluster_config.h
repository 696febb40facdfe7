// The fixed membership a member boots with, parsed from etcd-style flags, and the IDs derived
// from it. Every member computes the same IDs from the same flags, with no coordination.
//
//   member ID  = FNV-1a-64 of "chainfire-member\0" token "\0" name "\0" sorted peer URLs
//   cluster ID = FNV-1a-64 of "chainfire-cluster\0" token "\0" sorted member IDs (hex)
// (never 0; 0 means "none" in Raft).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "chainfire/backup.pb.h"

namespace chainfire::server {

struct MemberSpec {
  std::string name;
  std::vector<std::string> peer_urls;  // as given (advertised peer URLs)
  uint64_t id = 0;
  // TEST ONLY (--testing-peer-dial): where this member dials the member instead of its first
  // peer URL (a per-link proxy of the chaos lane). Not part of the identity or cluster ID.
  std::string dial_override;
  // The host:port this member dials to reach the member.
  std::string DialAddress() const;
};

struct ClusterSpec {
  std::string token;
  std::vector<MemberSpec> members;  // in --initial-cluster order
  uint64_t cluster_id = 0;

  const MemberSpec* Find(const std::string& name) const;
  const MemberSpec* FindId(uint64_t id) const;
  // One line per member, "name=id peer-urls", for messages and the identity record.
  std::string Describe() const;
  // A cluster restored from a backup mixes the backup's SHA-256 (hex) into its ID, so it never
  // shares an ID with its source even with the same names, URLs and token.
  void SaltClusterId(const std::string& backup_sha256_hex);
};

// The identity record a data dir keeps: "member <id> of <Describe()>"; a later boot must match.
std::string IdentityRecord(const ClusterSpec& spec, uint64_t self);
// The membership as backup headers carry it.
backup::BackupHeader MembershipHeader(const ClusterSpec& spec);

// Parses "--initial-cluster" ("n1=http://a:2380,n2=http://b:2380,n1=http://c:2380" — several
// URLs per name allowed) and derives the IDs. InvalidArgument names what is wrong.
absl::StatusOr<ClusterSpec> ParseInitialCluster(const std::string& initial_cluster,
                                                const std::string& token);

// Parses a comma-separated URL list ("http://127.0.0.1:2379,..."; https:// means TLS, which the
// caller sets up). `flag` names the flag in errors.
absl::StatusOr<std::vector<std::string>> ParseUrls(const std::string& urls,
                                                   const std::string& flag);
// "http://host:port" or "https://host:port" -> "host:port" for gRPC.
std::string HostPort(const std::string& url);

// Lower-case hex without leading zeros, as etcdctl prints member IDs.
std::string HexId(uint64_t id);

}  // namespace chainfire::server
