#include "chainfire/auth/permissions.h"

#include <algorithm>

namespace chainfire::auth {
namespace {

bool IsFromKey(const std::string& range_end) {
  return range_end.size() == 1 && range_end[0] == '\0';
}

// The interval etcd's conventions give a key and range end; nullopt-like empty pair on an
// empty range (returns false).
bool ToInterval(const std::string& key, const std::string& range_end, std::string* begin,
                std::string* end) {
  *begin = key;
  if (range_end.empty()) {
    *end = key + std::string(1, '\0');  // exactly the key
    return true;
  }
  if (IsFromKey(range_end)) {
    end->clear();  // unbounded
    return true;
  }
  if (range_end <= key) return false;
  *end = range_end;
  return true;
}

// end a is at or past end b ("" is unbounded).
bool EndAtLeast(const std::string& a, const std::string& b) {
  if (a.empty()) return true;
  if (b.empty()) return false;
  return a >= b;
}

}  // namespace

void KeyRanges::Add(const std::string& key, const std::string& range_end) {
  std::string b, e;
  if (ToInterval(key, range_end, &b, &e)) ivs_.emplace_back(std::move(b), std::move(e));
}

void KeyRanges::Seal() {
  std::sort(ivs_.begin(), ivs_.end());
  std::vector<std::pair<std::string, std::string>> merged;
  for (auto& iv : ivs_) {
    // Overlapping or touching the previous one: extend it.
    if (!merged.empty() && (merged.back().second.empty() || iv.first <= merged.back().second)) {
      if (!EndAtLeast(merged.back().second, iv.second)) merged.back().second = iv.second;
      continue;
    }
    merged.push_back(std::move(iv));
  }
  ivs_ = std::move(merged);
}

bool KeyRanges::Covers(const std::string& key, const std::string& range_end) const {
  std::string b, e;
  if (!ToInterval(key, range_end, &b, &e)) {
    // An empty range reads or writes nothing; etcd still asks for the start key.
    ToInterval(key, std::string(), &b, &e);
  }
  // The last interval starting at or before b.
  auto it = std::upper_bound(ivs_.begin(), ivs_.end(), b,
                             [](const std::string& k, const auto& iv) { return k < iv.first; });
  if (it == ivs_.begin()) return false;
  --it;
  if (!it->second.empty() && b >= it->second) return false;
  return EndAtLeast(it->second, e);
}

UserPermissions MergePermissions(const std::vector<const authpb::Role*>& roles) {
  UserPermissions out;
  for (const authpb::Role* role : roles) {
    for (const authpb::Permission& p : role->keypermission()) {
      if (p.permtype() == authpb::Permission::READ ||
          p.permtype() == authpb::Permission::READWRITE) {
        out.read.Add(p.key(), p.range_end());
      }
      if (p.permtype() == authpb::Permission::WRITE ||
          p.permtype() == authpb::Permission::READWRITE) {
        out.write.Add(p.key(), p.range_end());
      }
    }
  }
  out.read.Seal();
  out.write.Seal();
  return out;
}

}  // namespace chainfire::auth
