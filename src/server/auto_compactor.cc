#include "chainfire/server/auto_compactor.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "chainfire/common/thread_name.h"
#include "spdlog/spdlog.h"

namespace chainfire::server {

absl::StatusOr<AutoCompactionPolicy> ParseAutoCompaction(const std::string& mode,
                                                         const std::string& retention) {
  AutoCompactionPolicy p;
  if (retention.empty() || retention == "0") return p;  // off, as etcd's default
  if (mode == "revision") {
    int64_t n = 0;
    if (!absl::SimpleAtoi(retention, &n) || n <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--auto-compaction-retention: '", retention, "' is not a revision count"));
    }
    p.mode = AutoCompactionPolicy::Mode::kRevision;
    p.revisions = n;
    return p;
  }
  if (mode != "periodic") {
    return absl::InvalidArgumentError(
        absl::StrCat("--auto-compaction-mode: '", mode, "' (expected periodic or revision)"));
  }
  int64_t hours = 0;
  int64_t ms = 0;
  if (absl::SimpleAtoi(retention, &hours)) {
    ms = hours * 3600 * 1000;
  } else {
    const char unit = retention.back();
    int64_t n = 0;
    if (!absl::SimpleAtoi(retention.substr(0, retention.size() - 1), &n) || n <= 0 ||
        (unit != 's' && unit != 'm' && unit != 'h')) {
      return absl::InvalidArgumentError(absl::StrCat("--auto-compaction-retention: '", retention,
                                                     "' (expected e.g. 30m, 1h, 90s, or hours)"));
    }
    ms = n * (unit == 's' ? 1000 : unit == 'm' ? 60000 : 3600000);
  }
  if (ms <= 0) {
    return absl::InvalidArgumentError("--auto-compaction-retention must be positive");
  }
  p.mode = AutoCompactionPolicy::Mode::kPeriodic;
  p.period = std::chrono::milliseconds(ms);
  return p;
}

AutoCompactor::AutoCompactor(NodeHost* host, AutoCompactionPolicy policy)
    : host_(host), policy_(policy) {
  if (policy_.mode != AutoCompactionPolicy::Mode::kOff)
    thread_ = std::thread([this] {
      SetThreadName("cf-autocompact");
      Loop();
    });
}

void AutoCompactor::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void AutoCompactor::Compact(int64_t rev) {
  if (rev <= host_->kv().compact_revision()) return;
  internal::Request r;
  r.mutable_compaction()->set_revision(rev);
  host_->Propose(std::move(r), [rev](WriteResult result) {
    if (result.status.ok()) {
      spdlog::info("auto-compacted to revision {}", rev);
    } else {
      spdlog::debug("auto-compaction to {} not done: {}", rev, result.status.ToString());
    }
  });
}

void AutoCompactor::Loop() {
  using Clock = std::chrono::steady_clock;
  const auto interval = policy_.mode == AutoCompactionPolicy::Mode::kPeriodic
                            ? std::max(std::chrono::milliseconds(1000), policy_.period / 10)
                            : std::chrono::milliseconds(1000);
  // Samples of (time, revision), oldest first, for periodic mode.
  std::deque<std::pair<Clock::time_point, int64_t>> samples;
  std::unique_lock<std::mutex> l(mu_);
  while (!cv_.wait_for(l, interval, [&] { return stopping_; })) {
    l.unlock();
    const int64_t current = host_->kv().revision();
    const bool leader = host_->leader() == host_->member_id();
    if (policy_.mode == AutoCompactionPolicy::Mode::kRevision) {
      if (leader && current - policy_.revisions > 0) Compact(current - policy_.revisions);
    } else {
      const auto now = Clock::now();
      samples.emplace_back(now, current);
      int64_t target = 0;
      while (!samples.empty() && now - samples.front().first >= policy_.period) {
        target = samples.front().second;
        samples.pop_front();
      }
      if (!leader) samples.clear();  // a new leader starts its own clock, as etcd's does
      if (leader && target > 0) Compact(target);
    }
    l.lock();
  }
}

}  // namespace chainfire::server
