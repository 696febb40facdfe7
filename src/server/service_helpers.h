// Helpers the etcd service files share (services.cc, watch_service.cc, lease_service.cc):
// answering a call at once, resolving its caller, proposing a request and answering with its
// result. Not a public header: include it only from src/server.
#pragma once

#include <type_traits>

#include "absl/status/status.h"
#include "chainfire/auth/errors.h"
#include "chainfire/server/auth_guard.h"
#include "chainfire/server/services.h"
#include "grpcpp/grpcpp.h"

namespace chainfire::server::internal_services {

inline absl::Status ErrEmptyKey() {
  return absl::InvalidArgumentError("etcdserver: key is not provided");
}
inline absl::Status ErrTooLarge() {
  return absl::InvalidArgumentError("etcdserver: request is too large");
}

inline grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* ctx,
                                           const absl::Status& s) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpc(s));
  return reactor;
}

// Runs `fn(caller)` with the call's caller: at once when it is known (the common case, and
// always when no token is sent), after a read when its token's entry is not applied here yet;
// answers the call with the error when the token is invalid.
template <typename Fn>
void WithCaller(AuthGuard* guard, grpc::CallbackServerContext* ctx,
                grpc::ServerUnaryReactor* reactor, Fn fn) {
  absl::StatusOr<auth::Caller> now = guard->CallerNow(ctx);
  if (now.ok()) {
    fn(*now);
    return;
  }
  guard->Resolve(
      ctx, [guard, ctx, reactor, fn = std::move(fn)](absl::StatusOr<auth::Caller> caller) mutable {
        if (caller.ok()) {
          fn(*caller);
          return;
        }
        guard->LogRefused(ctx, auth::Caller{}, "a request", caller.status());
        reactor->Finish(ToGrpc(caller.status()));
      });
}

// Serves a read from this member's state, as etcd's doSerialize: when it may run (at once when
// `linearizable` is false, else after a read index; on the calling thread (serializable) or the
// node thread (linearizable) for kPoint work, on a reader thread for kScan), `check(view, caller)`
// decides the permission as of now (auth on), `read()` reads into the response, and a change of the
// auth store under the read fails it with ErrAuthOldRevision; then `header` is filled and the call
// answered. `what` names the request in the log line of a refusal.
template <typename Check, typename Read>
grpc::ServerUnaryReactor* ServeLocalRead(NodeHost* host, AuthGuard* guard,
                                         grpc::CallbackServerContext* ctx, bool linearizable,
                                         NodeHost::ReadWork work, const char* what,
                                         etcdserverpb::ResponseHeader* header, Check check,
                                         Read read) {
  auto* reactor = ctx->DefaultReactor();
  WithCaller(guard, ctx, reactor, [=](const auth::Caller& caller) {
    auto serve = [=](absl::Status s) {
      std::shared_ptr<const auth::AuthView> view;
      if (s.ok() && host->auth().enabled()) {
        view = host->auth().view();
        s = check(*view, caller);
        if (!s.ok()) guard->LogRefused(ctx, caller, what, s);
      }
      if (s.ok()) s = read();
      if (s.ok() && view && caller.revision != 0 &&
          host->auth().view()->revision() != caller.revision) {
        s = auth::ErrAuthOldRevision();
      }
      if (s.ok()) host->FillHeader(header);
      reactor->Finish(ToGrpc(s));
    };
    if (linearizable) {
      host->LinearizableRead(std::move(serve), work);
    } else {
      host->SerializableRead(std::move(serve), work);
    }
  });
  return reactor;
}

// Errors worth a log line: a caller refused for who it is or what it may do.
inline bool IsAuthRefusal(const absl::Status& s) {
  return s.code() == absl::StatusCode::kPermissionDenied ||
         s.code() == absl::StatusCode::kUnauthenticated || s == auth::ErrUserEmpty() ||
         s == auth::ErrAuthOldRevision() || s == auth::ErrInvalidAuthMgmt();
}

// Proposes `r` stamped with the caller; when it is applied, answers with the part of the
// result `field` names and the response header filled in (or with the request's error).
template <typename Response>
grpc::ServerUnaryReactor* ProposeAndReply(NodeHost* host, AuthGuard* guard,
                                          grpc::CallbackServerContext* ctx, internal::Request r,
                                          Response* resp, Response WriteResult::*field) {
  auto* reactor = ctx->DefaultReactor();
  WithCaller(guard, ctx, reactor,
             [host, guard, ctx, resp, reactor, field,
              r = std::move(r)](const auth::Caller& caller) mutable {
               AuthGuard::Stamp(caller, &r);
               host->Propose(std::move(r), [host, guard, ctx, caller, resp, reactor,
                                            field](WriteResult result) {
                 if (result.status.ok()) {
                   *resp = std::move(result.*field);
                   // etcd 3.4 answers Alarm without a header.
                   if constexpr (!std::is_same_v<Response, etcdserverpb::AlarmResponse>) {
                     host->FillHeader(resp->mutable_header());
                   }
                 } else if (IsAuthRefusal(result.status)) {
                   guard->LogRefused(ctx, caller, "a write", result.status);
                 }
                 reactor->Finish(ToGrpc(result.status));
               });
             });
  return reactor;
}
}  // namespace chainfire::server::internal_services
