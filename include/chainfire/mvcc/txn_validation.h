// etcd's checks of a transaction before it is proposed, with etcd's errors:
//   more than `max_ops` operations in compare, success or failure:
//       InvalidArgument "etcdserver: too many operations in txn request"
//   within one branch (nested txns included), two puts of one key, or a put of a key inside a
//   range deleted in the same branch: InvalidArgument "etcdserver: duplicate key given in txn
//   request" (the same key in the success and the failure branch is allowed)
//   an empty key in any operation or compare: InvalidArgument "etcdserver: key is not provided"
#pragma once

#include "absl/status/status.h"
#include "etcd/rpc.pb.h"

namespace chainfire::mvcc {

inline constexpr int kMaxTxnOps = 128;

absl::Status ValidateTxn(const etcdserverpb::TxnRequest& req, int max_ops = kMaxTxnOps);

}  // namespace chainfire::mvcc
