// etcd 3.4's auth errors: the gRPC code and message each client matches on (etcdctl prints
// them; clientv3 and Patroni re-authenticate on ErrInvalidAuthToken and ErrAuthOldRevision).
#pragma once

#include "absl/status/status.h"

namespace chainfire::auth {

absl::Status ErrRootUserNotExist();
absl::Status ErrRootRoleNotExist();
absl::Status ErrUserAlreadyExist();
absl::Status ErrUserEmpty();
absl::Status ErrUserNotFound();
absl::Status ErrRoleAlreadyExist();
absl::Status ErrRoleNotFound();
absl::Status ErrRoleEmpty();
absl::Status ErrAuthFailed();
absl::Status ErrPermissionDenied();
absl::Status ErrRoleNotGranted();
absl::Status ErrPermissionNotGranted();
absl::Status ErrAuthNotEnabled();
absl::Status ErrInvalidAuthToken();
absl::Status ErrInvalidAuthMgmt();
absl::Status ErrAuthOldRevision();

}  // namespace chainfire::auth
