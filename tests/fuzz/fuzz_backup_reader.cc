// Fuzz target: the backup file reader (chainfire-backup verify/restore and the snapshot
// install path read every file through VerifyFile). Any input must be accepted or refused with
// a status; never a crash, a hang or an out-of-bounds read.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "chainfire/backup/format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/chainfire-fuzz-backup-" + std::to_string(getpid());
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  size_t records = 0;
  auto summary =
      chainfire::backup::VerifyFile(path, [&](chainfire::backup::RecordType, std::string_view) {
        ++records;
        return absl::OkStatus();
      });
  if (summary.ok()) (void)chainfire::backup::SummaryJson(*summary);
  std::remove(path.c_str());
  return 0;
}
