// Key-range permissions as etcd 3.4 decides them: a user's READ and WRITE grants are the union
// of its roles' permissions; a request on one key needs that key inside the union, a request on
// [key, range_end) needs the whole range inside it (etcd's range permission cache).
// Thread-safety: immutable once built; any thread may read.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "etcd/auth.pb.h"

namespace chainfire::auth {

// A set of keys as sorted, disjoint, non-adjacent half-open intervals [begin, end); an empty
// end means "every key >= begin".
class KeyRanges {
 public:
  // Adds etcd's permission range: one key (empty range_end), [key, range_end), or every key
  // >= key (range_end "\0"). An empty range (range_end <= key) adds nothing.
  void Add(const std::string& key, const std::string& range_end);
  // Merges what Add collected; call once after the last Add.
  void Seal();
  // Whether the request range (etcd's conventions, as Add) lies wholly inside the set.
  bool Covers(const std::string& key, const std::string& range_end) const;
  const std::vector<std::pair<std::string, std::string>>& intervals() const { return ivs_; }

 private:
  std::vector<std::pair<std::string, std::string>> ivs_;
};

// One user's merged grants.
struct UserPermissions {
  KeyRanges read, write;
};

// Merges the permissions of `roles` (the roles a user holds that exist).
UserPermissions MergePermissions(const std::vector<const authpb::Role*>& roles);

}  // namespace chainfire::auth
