#!/usr/bin/env bash
# Runs the multi-process tests ROUNDS times in a row (default 3) while stress-ng keeps 4 CPU
# workers busy on this 2-core machine: the timing of every cluster test must hold on a loaded
# machine. Needs a build (scripts/build.sh) and stress-ng (apt-get install stress-ng).
# Usage: scripts/test-under-load.sh [ROUNDS] [CTEST_REGEX]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
regex=${2:-'^cluster\.'}
command -v stress-ng >/dev/null || { echo "test-under-load: stress-ng missing" >&2; exit 2; }
stress-ng --cpu 4 --timeout 3h >/dev/null 2>&1 &
load=$!
trap 'kill $load 2>/dev/null || true; wait $load 2>/dev/null || true' EXIT
for r in $(seq 1 "$rounds"); do
  echo "test-under-load: round $r of $rounds ($(date +%T))"
  ctest --test-dir build -j2 -R "$regex" --output-on-failure
done
echo "test-under-load: $rounds rounds passed under stress-ng --cpu 4"
