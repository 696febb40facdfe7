#!/usr/bin/env bash
# Measures write throughput with etcdctl's own load generator (`etcdctl check perf`, a real
# Go etcd client) against a local 3-member ChainFire cluster and, if etcd 3.4 is installed
# (Debian package etcd-server), against a local 3-member etcd cluster with the same settings.
# Each run takes about a minute. Usage: scripts/bench-check-perf.sh [s|m|l|xl]  (default l)
# Results go to work/bench/check-perf-<load>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
load=${1:-l}
out=work/bench/check-perf-$load.txt
mkdir -p work/bench
dir=$(mktemp -d /tmp/chainfire-bench.XXXX)
pids=()
cleanup() { kill -9 "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
# shellcheck source=bench-cluster.sh
source scripts/bench-cluster.sh
measure() { # name base-port
  local eps="127.0.0.1:$(($2 + 1)),127.0.0.1:$(($2 + 2)),127.0.0.1:$(($2 + 3))"
  echo "== $1 (etcdctl check perf --load=$load)" | tee -a "$out"
  ETCDCTL_API=3 etcdctl --endpoints="$eps" check perf --load="$load" 2>&1 | tr '\r' '\n' |
    grep -E "PASS|FAIL" | tee -a "$out" || true
}
: >"$out"
scripts/build.sh >/dev/null
run_cluster build/bin/chainfire 25100
measure chainfire 25100
kill -9 "${pids[@]}"; wait 2>/dev/null || true; pids=()
if command -v etcd >/dev/null; then
  run_cluster "$(command -v etcd)" 25200
  measure "etcd $(etcd --version | head -1 | awk '{print $3}')" 25200
fi
echo "results in $out"
