// Member: auth at apply. Auth operations change the replicated auth store; key-value and lease
// requests made while auth is on are checked again here against the store as of this entry,
// so a permission revoked by an earlier entry is never bypassed (etcd's authApplierV3).
#include "absl/strings/str_cat.h"
#include "chainfire/member/member.h"

namespace chainfire::member {

using auth::AuthView;
using auth::Caller;

absl::Status Member::CheckPermission(const internal::Request& req) const {
  std::shared_ptr<const AuthView> v = auth_.view();
  const Caller caller{req.username(), req.auth_revision()};
  // WRITE on every key attached to a lease the request revokes or puts under.
  auto lease_keys = [&](int64_t lease) -> absl::Status {
    if (lease == 0) return absl::OkStatus();
    for (const std::string& k : kv_->LeaseKeys(lease)) {
      if (absl::Status s = v->CheckKeys(caller, k, "", true); !s.ok()) return s;
    }
    return absl::OkStatus();
  };
  switch (req.op_case()) {
    case internal::Request::kPut: {
      const auto& p = req.put();
      if (absl::Status s = v->CheckKeys(caller, p.key(), "", true); !s.ok()) return s;
      if (absl::Status s = lease_keys(p.lease()); !s.ok()) return s;
      if (p.prev_kv()) return v->CheckKeys(caller, p.key(), "", false);
      return absl::OkStatus();
    }
    case internal::Request::kDeleteRange: {
      const auto& d = req.delete_range();
      if (absl::Status s = v->CheckKeys(caller, d.key(), d.range_end(), true); !s.ok()) return s;
      if (d.prev_kv()) return v->CheckKeys(caller, d.key(), d.range_end(), false);
      return absl::OkStatus();
    }
    case internal::Request::kTxn:
      return v->CheckTxn(caller, req.txn());
    case internal::Request::kLeaseRevoke:
      return lease_keys(req.lease_revoke().id());
    default:
      // Lease grants, compactions, alarms and member attributes: no key check (etcd 3.4).
      return absl::OkStatus();
  }
}

void Member::ApplyAuth(uint64_t index, const internal::Request& req, WriteResult* result) {
  const Caller caller{req.username(), req.auth_revision()};
  const std::string token =
      req.has_authenticate() ? absl::StrCat(req.authenticate().token(), ".", index) : std::string();
  auth::AuthEffects effects;
  result->status = auth_.Apply(req, caller, token, &result->auth, &effects);
  if (effects.changed) {
    kv_->ApplyAuthState(index, auth_.Record());
  } else {
    kv_->MarkApplied(index);
  }
  if (!result->status.ok()) return;
  // Tokens are volatile: one whose entry was in this member's log when it started (written
  // before the restart) is not registered, so a restart forgets every token. An entry without
  // a token part (JWT mode: the member that asked signs its own) registers nothing.
  if (!effects.token_user.empty() && !req.authenticate().token().empty() && index > log_at_start_) {
    tokens_->Assign(token, effects.token_user, now_ms_);
  }
  if (!effects.tokens_of.empty()) tokens_->ForgetUser(effects.tokens_of);
  if (effects.all_tokens_end) tokens_->Clear();
}

}  // namespace chainfire::member
