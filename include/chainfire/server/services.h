// The etcd v3 gRPC services ChainFire serves (callback API: no thread blocks per request).
// KV, Watch, Lease, Cluster and Maintenance: every RPC of etcd 3.4's API, with etcd's errors;
// Cluster's member changes are refused (membership is fixed at boot, ErrMembershipFixed). With
// auth on (auth_service.h), every call is checked as etcd 3.4 checks it: reads here against the
// caller's permissions, writes at apply (member_auth.cc), Maintenance's Defragment, Snapshot,
// Hash and HashKV and Cluster's member changes need the root role.
// Thread-safety: gRPC calls these from its threads; they only touch thread-safe state.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "chainfire/peer.grpc.pb.h"
#include "chainfire/server/auth_guard.h"
#include "chainfire/server/node_host.h"
#include "etcd/rpc.grpc.pb.h"

namespace chainfire::server {

// The etcd API level reported by Status.version (clients parse it); ChainFire's own version
// is printed by `chainfire --version`.
inline constexpr char kEtcdApiVersion[] = "3.4.0";
inline constexpr char kChainfireVersion[] = "0.1.0";

// The error clients get for any membership change.
absl::Status ErrMembershipFixed();

// Converts our absl::Status (etcd's code and message) to a grpc::Status.
grpc::Status ToGrpc(const absl::Status& s);

// The backend quota (--quota-backend-bytes): once the data dir outgrows it, a NOSPACE alarm is
// raised through the log and writes that add data fail until it is disarmed. The size is
// sampled at most every 500 ms (listing the data dir is not free).
class Quota {
 public:
  Quota(NodeHost* host, storage::Engine* engine, int64_t bytes)
      : host_(host), engine_(engine), bytes_(bytes) {}
  // Fails with etcd's NOSPACE error when the alarm is active, or raises it when a request of
  // `request_bytes` would exceed the quota.
  absl::Status Check(int64_t request_bytes);

 private:
  NodeHost* host_;
  storage::Engine* engine_;
  int64_t bytes_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point sampled_;  // guarded by mu_
  int64_t size_ = 0;                               // guarded by mu_
};

class KvService : public etcdserverpb::KV::CallbackService {
 public:
  KvService(NodeHost* host, int64_t max_request_bytes, Quota* quota, AuthGuard* guard)
      : host_(host), max_request_bytes_(max_request_bytes), quota_(quota), guard_(guard) {}
  grpc::ServerUnaryReactor* Range(grpc::CallbackServerContext* ctx,
                                  const etcdserverpb::RangeRequest* req,
                                  etcdserverpb::RangeResponse* resp) override;
  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx,
                                const etcdserverpb::PutRequest* req,
                                etcdserverpb::PutResponse* resp) override;
  grpc::ServerUnaryReactor* DeleteRange(grpc::CallbackServerContext* ctx,
                                        const etcdserverpb::DeleteRangeRequest* req,
                                        etcdserverpb::DeleteRangeResponse* resp) override;
  grpc::ServerUnaryReactor* Txn(grpc::CallbackServerContext* ctx,
                                const etcdserverpb::TxnRequest* req,
                                etcdserverpb::TxnResponse* resp) override;
  grpc::ServerUnaryReactor* Compact(grpc::CallbackServerContext* ctx,
                                    const etcdserverpb::CompactionRequest* req,
                                    etcdserverpb::CompactionResponse* resp) override;

 private:
  NodeHost* host_;
  int64_t max_request_bytes_;
  Quota* quota_;
  AuthGuard* guard_;
};

class ClusterService : public etcdserverpb::Cluster::CallbackService {
 public:
  ClusterService(NodeHost* host, AuthGuard* guard) : host_(host), guard_(guard) {}
  grpc::ServerUnaryReactor* MemberList(grpc::CallbackServerContext* ctx,
                                       const etcdserverpb::MemberListRequest* req,
                                       etcdserverpb::MemberListResponse* resp) override;
  grpc::ServerUnaryReactor* MemberAdd(grpc::CallbackServerContext* ctx,
                                      const etcdserverpb::MemberAddRequest*,
                                      etcdserverpb::MemberAddResponse*) override;
  grpc::ServerUnaryReactor* MemberRemove(grpc::CallbackServerContext* ctx,
                                         const etcdserverpb::MemberRemoveRequest*,
                                         etcdserverpb::MemberRemoveResponse*) override;
  grpc::ServerUnaryReactor* MemberUpdate(grpc::CallbackServerContext* ctx,
                                         const etcdserverpb::MemberUpdateRequest*,
                                         etcdserverpb::MemberUpdateResponse*) override;
  grpc::ServerUnaryReactor* MemberPromote(grpc::CallbackServerContext* ctx,
                                          const etcdserverpb::MemberPromoteRequest*,
                                          etcdserverpb::MemberPromoteResponse*) override;

 private:
  // etcd checks root before a membership change; the change is then refused (fixed at boot).
  grpc::ServerUnaryReactor* RefuseChange(grpc::CallbackServerContext* ctx);
  NodeHost* host_;
  AuthGuard* guard_;
};

// Defragment, MoveLeader, Hash, HashKV and the preparation of a Snapshot stream run on one of
// two helper threads (never on a gRPC callback thread); more of them queue.
class MaintenanceService : public etcdserverpb::Maintenance::CallbackService {
 public:
  MaintenanceService(NodeHost* host, storage::Engine* engine, AuthGuard* guard)
      : host_(host), engine_(engine), guard_(guard) {}
  ~MaintenanceService() override { Stop(); }
  // Finishes the queued Defragment and MoveLeader calls and joins the helper threads; call
  // after the gRPC server has shut down and before the host and engine go away.
  void Stop() { helpers_.Stop(); }
  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* ctx,
                                   const etcdserverpb::StatusRequest* req,
                                   etcdserverpb::StatusResponse* resp) override;
  grpc::ServerUnaryReactor* HashKV(grpc::CallbackServerContext* ctx,
                                   const etcdserverpb::HashKVRequest* req,
                                   etcdserverpb::HashKVResponse* resp) override;
  grpc::ServerUnaryReactor* Hash(grpc::CallbackServerContext* ctx,
                                 const etcdserverpb::HashRequest* req,
                                 etcdserverpb::HashResponse* resp) override;
  grpc::ServerUnaryReactor* Defragment(grpc::CallbackServerContext* ctx,
                                       const etcdserverpb::DefragmentRequest* req,
                                       etcdserverpb::DefragmentResponse* resp) override;
  grpc::ServerUnaryReactor* MoveLeader(grpc::CallbackServerContext* ctx,
                                       const etcdserverpb::MoveLeaderRequest* req,
                                       etcdserverpb::MoveLeaderResponse* resp) override;
  grpc::ServerUnaryReactor* Alarm(grpc::CallbackServerContext* ctx,
                                  const etcdserverpb::AlarmRequest* req,
                                  etcdserverpb::AlarmResponse* resp) override;
  // A logical backup of this member's state at one moment (a RocksDB snapshot; writes go on),
  // written to a temporary file under the data dir, then streamed in 32 KiB chunks.
  grpc::ServerWriteReactor<etcdserverpb::SnapshotResponse>* Snapshot(
      grpc::CallbackServerContext* ctx, const etcdserverpb::SnapshotRequest* req) override;

 private:
  class SnapshotStream;

  // etcd's authMaintenanceServer: OK when auth is off or the caller holds the root role.
  absl::Status CheckAdmin(grpc::CallbackServerContext* ctx);
  // Checks the caller, then hashes the state at `revision` (0: now) on a helper thread and
  // answers the call, `fill` putting the hash and its revision into the response.
  grpc::ServerUnaryReactor* HashOnHelper(grpc::CallbackServerContext* ctx, int64_t revision,
                                         std::function<void(uint32_t hash, int64_t at)> fill);
  NodeHost* host_;
  storage::Engine* engine_;
  AuthGuard* guard_;
  WorkerPool helpers_{2, "cf-helper"};
};

// Watch: one bidirectional stream reactor per client stream, many watches per stream, fed by
// the member's WatchHub. Each stream has its own bounded queue of responses with one write
// outstanding; `created` is queued before the watch is registered, so it precedes its events.
class WatchService : public etcdserverpb::Watch::CallbackService {
 public:
  // `max_bytes`: the largest response a `fragment` watch gets (the request size limit).
  WatchService(NodeHost* host, size_t max_bytes, AuthGuard* guard)
      : host_(host), max_bytes_(max_bytes), guard_(guard) {}
  grpc::ServerBidiReactor<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>* Watch(
      grpc::CallbackServerContext* ctx) override;

 private:
  NodeHost* host_;
  size_t max_bytes_;
  AuthGuard* guard_;
};

// Lease: grant and revoke go through the log; keep-alives and TTL queries are answered by the
// leader (a follower forwards them over the peer connection, asynchronously) and are not Raft
// proposals; the list is local.
class LeaseService : public etcdserverpb::Lease::CallbackService {
 public:
  LeaseService(NodeHost* host, Quota* quota, AuthGuard* guard)
      : host_(host), quota_(quota), guard_(guard) {}
  grpc::ServerUnaryReactor* LeaseGrant(grpc::CallbackServerContext* ctx,
                                       const etcdserverpb::LeaseGrantRequest* req,
                                       etcdserverpb::LeaseGrantResponse* resp) override;
  grpc::ServerUnaryReactor* LeaseRevoke(grpc::CallbackServerContext* ctx,
                                        const etcdserverpb::LeaseRevokeRequest* req,
                                        etcdserverpb::LeaseRevokeResponse* resp) override;
  grpc::ServerUnaryReactor* LeaseTimeToLive(grpc::CallbackServerContext* ctx,
                                            const etcdserverpb::LeaseTimeToLiveRequest* req,
                                            etcdserverpb::LeaseTimeToLiveResponse* resp) override;
  grpc::ServerUnaryReactor* LeaseLeases(grpc::CallbackServerContext* ctx,
                                        const etcdserverpb::LeaseLeasesRequest* req,
                                        etcdserverpb::LeaseLeasesResponse* resp) override;
  grpc::ServerBidiReactor<etcdserverpb::LeaseKeepAliveRequest,
                          etcdserverpb::LeaseKeepAliveResponse>*
  LeaseKeepAlive(grpc::CallbackServerContext* ctx) override;

  // Renews `id` at the leader (locally or forwarded); `done` runs once, on some thread.
  void KeepAlive(int64_t id,
                 std::function<void(absl::StatusOr<etcdserverpb::LeaseKeepAliveResponse>)> done);

 private:
  NodeHost* host_;
  Quota* quota_;
  AuthGuard* guard_;
};

}  // namespace chainfire::server
