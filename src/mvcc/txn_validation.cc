#include "chainfire/mvcc/txn_validation.h"

#include <set>
#include <string>
#include <utility>
#include <vector>

namespace chainfire::mvcc {
namespace {

absl::Status TooMany() {
  return absl::InvalidArgumentError("etcdserver: too many operations in txn request");
}
absl::Status Duplicate() {
  return absl::InvalidArgumentError("etcdserver: duplicate key given in txn request");
}
absl::Status NoKey() { return absl::InvalidArgumentError("etcdserver: key is not provided"); }

struct Interval {
  std::string key, end;  // end "" = the key alone; "\0" = every key >= key
  bool Contains(const std::string& k) const {
    if (end.empty()) return k == key;
    if (end == std::string(1, '\0')) return k >= key;
    return k >= key && k < end;
  }
};

// The puts and deletes a list of operations may perform (a nested txn: either branch).
struct Writes {
  std::set<std::string> puts;
  std::vector<Interval> deletes;
};

absl::Status CheckOps(const google::protobuf::RepeatedPtrField<etcdserverpb::RequestOp>& ops,
                      int max_ops, Writes* out);

absl::Status CheckTxn(const etcdserverpb::TxnRequest& req, int max_ops, Writes* out) {
  if (req.compare_size() > max_ops || req.success_size() > max_ops ||
      req.failure_size() > max_ops) {
    return TooMany();
  }
  for (const etcdserverpb::Compare& c : req.compare()) {
    if (c.key().empty()) return NoKey();
  }
  Writes success, failure;
  if (absl::Status s = CheckOps(req.success(), max_ops, &success); !s.ok()) return s;
  if (absl::Status s = CheckOps(req.failure(), max_ops, &failure); !s.ok()) return s;
  // Only one branch runs: the same key in both is fine; report what either may write.
  out->puts = std::move(success.puts);
  out->puts.insert(failure.puts.begin(), failure.puts.end());
  out->deletes = std::move(success.deletes);
  out->deletes.insert(out->deletes.end(), failure.deletes.begin(), failure.deletes.end());
  return absl::OkStatus();
}

absl::Status CheckOps(const google::protobuf::RepeatedPtrField<etcdserverpb::RequestOp>& ops,
                      int max_ops, Writes* out) {
  Writes branch;
  for (const etcdserverpb::RequestOp& op : ops) {
    switch (op.request_case()) {
      case etcdserverpb::RequestOp::kRequestRange:
        if (absl::Status s = ValidateRange(op.request_range()); !s.ok()) return s;
        break;
      case etcdserverpb::RequestOp::kRequestPut:
        if (absl::Status s = ValidatePut(op.request_put()); !s.ok()) return s;
        if (!branch.puts.insert(op.request_put().key()).second) return Duplicate();
        break;
      case etcdserverpb::RequestOp::kRequestDeleteRange:
        if (op.request_delete_range().key().empty()) return NoKey();
        branch.deletes.push_back(
            {op.request_delete_range().key(), op.request_delete_range().range_end()});
        break;
      case etcdserverpb::RequestOp::kRequestTxn: {
        Writes nested;
        if (absl::Status s = CheckTxn(op.request_txn(), max_ops, &nested); !s.ok()) return s;
        for (const std::string& k : nested.puts) {
          if (!branch.puts.insert(k).second) return Duplicate();
        }
        branch.deletes.insert(branch.deletes.end(), nested.deletes.begin(), nested.deletes.end());
        break;
      }
      default:
        break;
    }
  }
  for (const std::string& k : branch.puts) {
    for (const Interval& d : branch.deletes) {
      if (d.Contains(k)) return Duplicate();
    }
  }
  *out = std::move(branch);
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidatePut(const etcdserverpb::PutRequest& req) {
  if (req.key().empty()) return NoKey();
  if (req.ignore_value() && !req.value().empty()) {
    return absl::InvalidArgumentError("etcdserver: value is provided");
  }
  if (req.ignore_lease() && req.lease() != 0) {
    return absl::InvalidArgumentError("etcdserver: lease is provided");
  }
  return absl::OkStatus();
}

absl::Status ValidateRange(const etcdserverpb::RangeRequest& req) {
  if (req.key().empty()) return NoKey();
  if (!etcdserverpb::RangeRequest::SortOrder_IsValid(req.sort_order()) ||
      !etcdserverpb::RangeRequest::SortTarget_IsValid(req.sort_target())) {
    return absl::InvalidArgumentError("etcdserver: invalid sort option");
  }
  return absl::OkStatus();
}

absl::Status ValidateTxn(const etcdserverpb::TxnRequest& req, int max_ops) {
  Writes writes;
  return CheckTxn(req, max_ops, &writes);
}

namespace {

// True when every operation of both branches satisfies `pred`.
template <typename Pred>
bool EveryOp(const etcdserverpb::TxnRequest& req, const Pred& pred) {
  for (const auto* ops : {&req.success(), &req.failure()}) {
    for (const etcdserverpb::RequestOp& op : *ops) {
      if (!pred(op)) return false;
    }
  }
  return true;
}

}  // namespace

bool TxnIsReadOnly(const etcdserverpb::TxnRequest& req) {
  return EveryOp(req, [](const etcdserverpb::RequestOp& op) { return op.has_request_range(); });
}

bool TxnIsSerializable(const etcdserverpb::TxnRequest& req) {
  return EveryOp(req, [](const etcdserverpb::RequestOp& op) {
    return op.has_request_range() && op.request_range().serializable();
  });
}

}  // namespace chainfire::mvcc
