#!/usr/bin/env bash
# Per acknowledged put, on each member of a local 3-member cluster of BINARY (ChainFire or
# etcd, same flags): context switches and futex, sendmsg/writev/write, recvmsg/read and
# fdatasync calls, per thread name and in all, counted by `perf stat --per-thread` (Debian's
# linux-perf) over a put run of chainfire-bench (64 in flight over 8 connections, 256-byte
# values, spread over the members). Prints JSON ({member: {"threads": ..., "total": ...}}) and
# writes it to work/bench/syscalls-<UTC time>.json (perf's own output and the thread map beside
# it: .perf.txt, .tids).
# Usage: scripts/bench-syscalls.sh [seconds (10)] [binary (build/bin/chainfire)]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
bin=$(readlink -f "${2:-build/bin/chainfire}")
base=${BENCH_SYSCALLS_PORT:-25600}
command -v perf >/dev/null || { echo "bench-syscalls: needs perf (apt-get install linux-perf)" >&2; exit 2; }
mkdir -p work/bench
out=work/bench/syscalls-$(date -u +%Y%m%dT%H%M%SZ).json
dir=$(mktemp -d /tmp/chainfire-syscalls.XXXX)
pids=()
cleanup() { kill -9 "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
scripts/build.sh >/dev/null
# shellcheck source=bench-cluster.sh
source scripts/bench-cluster.sh
run_cluster "$bin" "$base"
eps="127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2)),127.0.0.1:$((base + 3))"
tids() { # "tid member" of every thread alive now
  local i t
  for i in 0 1 2; do
    for t in /proc/"${pids[$i]}"/task/*; do echo "$(basename "$t") b$((i + 1))"; done
  done
}
tids >"$dir/tids"
events=sched:sched_switch
for s in futex sendmsg writev write recvmsg read fdatasync fsync; do events+=",syscalls:sys_enter_$s"; done
perf stat --per-thread -e "$events" -p "$(IFS=,; echo "${pids[*]}")" -o "$dir/perf.txt" &
perf_pid=$!
result=$(build/bin/chainfire-bench --endpoints "$eps" --op put --clients 64 --conns 8 \
  --seconds "$seconds" --val-size 256 --keys 1000000)
tids >>"$dir/tids"  # and threads started during the run
kill -INT "$perf_pid"
wait "$perf_pid" || true
sort -u -o "$dir/tids" "$dir/tids"
cp "$dir/perf.txt" "${out%.json}.perf.txt"  # the raw counts and the thread map, beside it
cp "$dir/tids" "${out%.json}.tids"
puts=$(echo "$result" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["ok"])')
PYTHONPATH=tests /usr/bin/python3 -m chainfire_harness.syscall_counts "$dir/perf.txt" \
  "$dir/tids" "$puts" | tee "$out"
echo "puts: $result" >&2
