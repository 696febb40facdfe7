#include "chainfire/auth/errors.h"

namespace chainfire::auth {

absl::Status ErrRootUserNotExist() {
  return absl::FailedPreconditionError("etcdserver: root user does not exist");
}
absl::Status ErrRootRoleNotExist() {
  return absl::FailedPreconditionError("etcdserver: root user does not have root role");
}
absl::Status ErrUserAlreadyExist() {
  return absl::FailedPreconditionError("etcdserver: user name already exists");
}
absl::Status ErrUserEmpty() { return absl::InvalidArgumentError("etcdserver: user name is empty"); }
absl::Status ErrUserNotFound() {
  return absl::FailedPreconditionError("etcdserver: user name not found");
}
absl::Status ErrRoleAlreadyExist() {
  return absl::FailedPreconditionError("etcdserver: role name already exists");
}
absl::Status ErrRoleNotFound() {
  return absl::FailedPreconditionError("etcdserver: role name not found");
}
absl::Status ErrRoleEmpty() { return absl::InvalidArgumentError("etcdserver: role name is empty"); }
absl::Status ErrAuthFailed() {
  return absl::InvalidArgumentError(
      "etcdserver: authentication failed, invalid user ID or password");
}
absl::Status ErrPermissionDenied() {
  return absl::PermissionDeniedError("etcdserver: permission denied");
}
absl::Status ErrRoleNotGranted() {
  return absl::FailedPreconditionError("etcdserver: role is not granted to the user");
}
absl::Status ErrPermissionNotGranted() {
  return absl::FailedPreconditionError("etcdserver: permission is not granted to the role");
}
absl::Status ErrAuthNotEnabled() {
  return absl::FailedPreconditionError("etcdserver: authentication is not enabled");
}
absl::Status ErrInvalidAuthToken() {
  return absl::UnauthenticatedError("etcdserver: invalid auth token");
}
absl::Status ErrInvalidAuthMgmt() {
  return absl::InvalidArgumentError("etcdserver: invalid auth management");
}
absl::Status ErrAuthOldRevision() {
  return absl::InvalidArgumentError("etcdserver: revision of auth store is old");
}

}  // namespace chainfire::auth
