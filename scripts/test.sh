#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test (ctest).
# On a fresh Debian 12 machine, as root:  ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
ctest --test-dir build --output-on-failure -j2 --timeout 900
# ctest keeps passing tests' output to itself: show the simulation's seed count and profile mix.
grep -hE "^(simulated|bug hunt|member bug hunt)" build/Testing/Temporary/LastTest.log || true
# The core again under ASan + UBSan (build-asan/).
scripts/test-sanitizers.sh
grep -hE "^simulated" build-asan/Testing/Temporary/LastTest.log | sed 's/^/asan+ubsan: /' || true
# libFuzzer runs of the fuzz targets (build-fuzz/, clang 14 + ASan + UBSan), 10 s each; longer
# runs: scripts/fuzz.sh <seconds>.
scripts/fuzz.sh "${CHAINFIRE_FUZZ_SECONDS:-10}"
