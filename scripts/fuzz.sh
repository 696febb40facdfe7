#!/usr/bin/env bash
# libFuzzer runs (clang 14, ASan + UBSan) of the fuzz targets in tests/fuzz: the backup file
# reader, peer message handling, client request validation. Usage:
#   scripts/fuzz.sh [seconds per target, default 10] [target ...]
# Builds build-fuzz/ (only the fuzz targets and what they link), then runs each target for the
# given time starting from its committed corpus (tests/fuzz/corpus/<target>/); new inputs go to
# work/fuzz/<target>/, a crash to work/fuzz/<target>/crash-*. To keep a crash fixed, copy its
# file into tests/fuzz/corpus/<target>/: the normal build's ctest replays every corpus file.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(backup_reader peer_message request_validation)
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
  -DCHAINFIRE_FUZZ=ON -DCHAINFIRE_SANITIZE=address,undefined >/dev/null
ninja -C build-fuzz -j2 "${targets[@]/#/fuzz_}"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
for t in "${targets[@]}"; do
  mkdir -p "work/fuzz/$t"
  echo "== fuzz_$t for ${seconds}s"
  build-fuzz/bin/"fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
    -artifact_prefix="work/fuzz/$t/" -print_final_stats=1 \
    "work/fuzz/$t" "tests/fuzz/corpus/$t" 2>&1 | grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY|.*Test unit written)' || true
  found=$(find "work/fuzz/$t" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | head -3)
  if [ -n "$found" ]; then
    echo "fuzz_$t found a failing input: $found"
    echo "reproduce: build-fuzz/bin/fuzz_$t $found"
    status=1
  fi
done
exit $status
