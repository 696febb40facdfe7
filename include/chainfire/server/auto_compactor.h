// AutoCompactor: etcd's --auto-compaction-mode / --auto-compaction-retention, run by the
// leader (followers only follow the Compact entries it proposes).
//
//   periodic: retention is a duration ("30m", "1h", "90s", or a number of hours); every
//             retention/10 (at least 1 s) the current revision is sampled, and the store is
//             compacted to the revision sampled one retention ago.
//   revision: retention is a revision count N; every second the store is compacted to
//             current revision - N when that is past the last compaction. (etcd checks every
//             5 minutes; checking more often compacts sooner, never more.)
// Thread-safety: owns one thread; Stop() before the host goes away.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "chainfire/server/node_host.h"

namespace chainfire::server {

struct AutoCompactionPolicy {
  enum class Mode { kOff, kPeriodic, kRevision } mode = Mode::kOff;
  std::chrono::milliseconds period{0};  // periodic
  int64_t revisions = 0;                // revision
};

// Parses the two flags; InvalidArgument names the flag.
absl::StatusOr<AutoCompactionPolicy> ParseAutoCompaction(const std::string& mode,
                                                         const std::string& retention);

class AutoCompactor {
 public:
  AutoCompactor(NodeHost* host, AutoCompactionPolicy policy);
  ~AutoCompactor() { Stop(); }
  void Stop();

 private:
  void Loop();
  void Compact(int64_t rev);

  NodeHost* host_;
  AutoCompactionPolicy policy_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace chainfire::server
