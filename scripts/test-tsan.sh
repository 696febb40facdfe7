#!/usr/bin/env bash
# ThreadSanitizer build (build-tsan/) of the storage and MVCC tests, whose code runs on several
# threads: RaftLogStore's group-commit writer thread, KvStore's compactor thread and the shared
# lock readers take against a snapshot install, WatchHub's catch-up thread. Run by hand (not by
# CI: the build adds about 6 minutes); any report fails the run.
# Debian's RocksDB is not instrumented: tests/tsan/suppressions.txt silences only what TSan sees
# of it (docs/testing.md, "Sanitizers", says what this covers and what it cannot).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build-tsan/build.ninja ]; then
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCHAINFIRE_SANITIZE=thread >/dev/null
fi
ninja -C build-tsan -j2 storage_test
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan/suppressions.txt"
build-tsan/bin/storage_test
