#include "linearizability.h"

#include <algorithm>
#include <limits>
#include <map>
#include <unordered_set>

#include "absl/strings/str_cat.h"

namespace chainfire::sim {
namespace {

constexpr uint64_t kInfinity = std::numeric_limits<uint64_t>::max();

// Model: the register's value. Returns false if `op` cannot take effect in `state`.
bool Step(const Operation& op, const std::string& state, std::string* next) {
  switch (op.kind) {
    case OpKind::kPut:
      *next = op.value;
      return true;
    case OpKind::kGet:
      *next = state;
      return op.output == state;
    case OpKind::kCas:
      if (op.unknown) {  // either outcome is fine; its effect follows from the state
        *next = state == op.expected ? op.value : state;
        return true;
      }
      if (op.cas_ok) {
        *next = op.value;
        return state == op.expected;
      }
      *next = state;
      return state != op.expected;
  }
  return false;
}

struct Event {
  uint64_t time;
  bool is_call;
  size_t op;  // index into ops
};

struct Node {
  bool is_call;
  size_t op;
  Node* match = nullptr;  // call <-> return
  Node* prev = nullptr;
  Node* next = nullptr;
};

struct CacheKey {
  std::vector<uint64_t> bits;
  std::string state;
  bool operator==(const CacheKey&) const = default;
};
struct CacheHash {
  size_t operator()(const CacheKey& k) const {
    size_t h = std::hash<std::string>()(k.state);
    for (uint64_t b : k.bits) h = h * 1000003u ^ std::hash<uint64_t>()(b);
    return h;
  }
};

LinearizabilityResult CheckOne(const std::vector<Operation>& ops, uint64_t max_steps) {
  std::vector<Event> events;
  for (size_t i = 0; i < ops.size(); ++i) {
    events.push_back({ops[i].call, true, i});
    events.push_back({ops[i].unknown ? kInfinity : ops[i].ret, false, i});
  }
  std::stable_sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
    if (a.time != b.time) return a.time < b.time;
    return a.is_call && !b.is_call;  // a call at time t precedes a return at t (concurrent)
  });
  std::vector<Node> nodes(events.size() + 1);
  Node* head = &nodes[events.size()];  // sentinel
  std::vector<Node*> call_of(ops.size()), ret_of(ops.size());
  Node* prev = head;
  for (size_t i = 0; i < events.size(); ++i) {
    Node* n = &nodes[i];
    n->is_call = events[i].is_call;
    n->op = events[i].op;
    n->prev = prev;
    prev->next = n;
    prev = n;
    (n->is_call ? call_of : ret_of)[n->op] = n;
  }
  for (size_t i = 0; i < ops.size(); ++i) {
    call_of[i]->match = ret_of[i];
    ret_of[i]->match = call_of[i];
  }
  auto lift = [](Node* call) {
    call->prev->next = call->next;
    if (call->next) call->next->prev = call->prev;
    Node* ret = call->match;
    ret->prev->next = ret->next;
    if (ret->next) ret->next->prev = ret->prev;
  };
  auto unlift = [](Node* call) {
    Node* ret = call->match;
    ret->prev->next = ret;
    if (ret->next) ret->next->prev = ret;
    call->prev->next = call;
    if (call->next) call->next->prev = call;
  };

  std::vector<uint64_t> bits((ops.size() + 63) / 64, 0);
  std::unordered_set<CacheKey, CacheHash> cache;
  std::vector<std::pair<Node*, std::string>> stack;
  std::string state;
  Node* entry = head->next;
  uint64_t steps = 0;
  while (head->next != nullptr) {
    if (++steps > max_steps) return LinearizabilityResult::kInconclusive;
    if (entry == nullptr) return LinearizabilityResult::kViolation;  // defensive
    if (entry->is_call) {
      std::string next;
      if (Step(ops[entry->op], state, &next)) {
        std::vector<uint64_t> nbits = bits;
        nbits[entry->op / 64] |= uint64_t{1} << (entry->op % 64);
        CacheKey key{nbits, next};
        if (cache.insert(key).second) {
          stack.emplace_back(entry, state);
          state = std::move(next);
          bits = std::move(nbits);
          lift(entry);
          entry = head->next;
          continue;
        }
      }
      entry = entry->next;
    } else {
      // A return with its call not linearized: backtrack.
      if (stack.empty()) return LinearizabilityResult::kViolation;
      auto [call, old_state] = std::move(stack.back());
      stack.pop_back();
      state = std::move(old_state);
      bits[call->op / 64] &= ~(uint64_t{1} << (call->op % 64));
      unlift(call);
      entry = call->next;
    }
  }
  return LinearizabilityResult::kOk;
}

}  // namespace

std::string DescribeOperation(const Operation& op) {
  std::string out = absl::StrCat("#", op.id, " c", op.client, " [", op.call, ",",
                                 op.unknown ? std::string("?") : absl::StrCat(op.ret), "] ");
  switch (op.kind) {
    case OpKind::kPut:
      absl::StrAppend(&out, "put(", op.key, "=", op.value, ")");
      break;
    case OpKind::kGet:
      absl::StrAppend(&out, "get(", op.key, ")->'", op.output, "'");
      break;
    case OpKind::kCas:
      absl::StrAppend(&out, "cas(", op.key, ": ", op.expected, "->", op.value, ")->",
                      op.unknown ? "?" : (op.cas_ok ? "ok" : "fail"));
      break;
  }
  return out;
}

LinearizabilityReport CheckLinearizable(const std::vector<Operation>& history, uint64_t max_steps) {
  std::map<std::string, std::vector<Operation>> by_key;
  for (const Operation& op : history) {
    if (op.unknown && op.kind == OpKind::kGet) continue;  // a read without a result: no effect
    by_key[op.key].push_back(op);
  }
  LinearizabilityReport report;
  for (const auto& [key, ops] : by_key) {
    const LinearizabilityResult r = CheckOne(ops, max_steps);
    if (r == LinearizabilityResult::kViolation) {
      report.result = r;
      report.key = key;
      for (const Operation& op : ops)
        absl::StrAppend(&report.explanation, DescribeOperation(op), "\n");
      return report;
    }
    if (r == LinearizabilityResult::kInconclusive) {
      report.result = r;
      report.key = key;
    }
  }
  return report;
}

}  // namespace chainfire::sim
