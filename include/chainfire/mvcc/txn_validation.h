// etcd's checks of a transaction before it is proposed, with etcd's errors:
//   more than `max_ops` operations in compare, success or failure:
//       InvalidArgument "etcdserver: too many operations in txn request"
//   within one branch (nested txns included), two puts of one key, or a put of a key inside a
//   range deleted in the same branch: InvalidArgument "etcdserver: duplicate key given in txn
//   request" (the same key in the success and the failure branch is allowed)
//   an empty key in any operation or compare: InvalidArgument "etcdserver: key is not provided"
//   a range operation with an unknown sort order or target: ValidateRange's error
// and of a range request alone (ValidateRange):
//   an empty key: InvalidArgument "etcdserver: key is not provided"
//   a sort order or target outside etcd's enums: InvalidArgument "etcdserver: invalid sort
//   option"
// Pure functions of the request; thread-safe.
#pragma once

#include "absl/status/status.h"
#include "etcd/rpc.pb.h"

namespace chainfire::mvcc {

inline constexpr int kMaxTxnOps = 128;

// etcd's checkPutRequest: an empty key, ignore_value with a value ("etcdserver: value is
// provided"), ignore_lease with a lease ("etcdserver: lease is provided"): InvalidArgument.
absl::Status ValidatePut(const etcdserverpb::PutRequest& req);
absl::Status ValidateRange(const etcdserverpb::RangeRequest& req);
absl::Status ValidateTxn(const etcdserverpb::TxnRequest& req, int max_ops = kMaxTxnOps);
// etcd's isTxnReadonly: every operation of both branches is a range (a nested txn is not).
bool TxnIsReadOnly(const etcdserverpb::TxnRequest& req);
// etcd's isTxnSerializable: every operation of both branches is a serializable range.
bool TxnIsSerializable(const etcdserverpb::TxnRequest& req);

}  // namespace chainfire::mvcc
