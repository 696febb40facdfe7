#!/usr/bin/env bash
# Restart time and memory with a large data set, for ChainFire or etcd (same flags, same client):
# starts a local 3-member cluster of BINARY, writes KEYS keys of 256 bytes with 64 clients
# (chainfire-bench --op fill), records each member's memory (VmRSS, RssAnon, RssFile), then
# restarts one follower twice, after SIGTERM and after kill -9, and measures from the new
# process's start until it answers a linearizable read (etcdctl get, polled). Prints one JSON
# line and appends it to work/bench/restart-<UTC time>.jsonl. BENCH_RESTART_LOG=FILE keeps the
# restarted member's log.
# Usage: scripts/bench-restart.sh [keys (1000000)] [binary (build/bin/chainfire)]
set -euo pipefail
cd "$(dirname "$0")/.."
keys=${1:-1000000}
bin=$(readlink -f "${2:-build/bin/chainfire}")
base=${BENCH_RESTART_PORT:-25500}
mkdir -p work/bench
out=work/bench/restart-$(date -u +%Y%m%dT%H%M%SZ).jsonl
dir=$(mktemp -d /tmp/chainfire-restart.XXXX)
pids=()
cleanup() { kill -9 "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
scripts/build.sh >/dev/null
# shellcheck source=bench-cluster.sh
source scripts/bench-cluster.sh

since() { awk -v now="$(date +%s.%N)" -v t0="$1" 'BEGIN { printf "%.2f", now - t0 }'; }
eps="127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2)),127.0.0.1:$((base + 3))"
run_cluster "$bin" "$base"
fill_start=$(date +%s.%N)
fill=$(build/bin/chainfire-bench --endpoints "$eps" --op fill --keys "$keys" --clients 64 \
  --conns 8 --seconds 3600 --val-size 256)
fill_s=$(since "$fill_start")

memory() { # pid -> {"VmRSS_kB":..,"RssAnon_kB":..,"RssFile_kB":..}
  awk '/^(VmRSS|RssAnon|RssFile):/ {gsub(":", "", $1); printf "%s\"%s_kB\":%s", sep, $1, $2; sep=","}
       BEGIN {printf "{"} END {printf "}"}' "/proc/$1/status"
}
mem="[$(memory "${pids[0]}"),$(memory "${pids[1]}"),$(memory "${pids[2]}")]"

follower() { # prints the index (1..3) of a member that is not the leader
  ETCDCTL_API=3 etcdctl --endpoints="$eps" endpoint status -w json |
    /usr/bin/python3 -c 'import json,sys
d = json.load(sys.stdin)
print(next(i + 1 for i, e in enumerate(d) if e["Status"]["leader"] != e["Status"]["header"]["member_id"]))'
}

restart_follower() { # signal: restarts a follower; sets ready_s (its start to first answer)
  local sig=$1 i pid start ep deadline
  i=$(follower)
  pid=${pids[$((i - 1))]}
  kill "-$sig" "$pid"
  deadline=$((SECONDS + 60))
  while kill -0 "$pid" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "bench-restart: member $i did not exit" >&2; exit 1; }
    sleep 0.05
  done
  wait "$pid" 2>/dev/null || true
  ep="127.0.0.1:$((base + i))"
  start=$(date +%s.%N)
  start_member "$bin" "$base" "$i"
  pids[$((i - 1))]=$member_pid
  deadline=$((SECONDS + 120))
  until ETCDCTL_API=3 etcdctl --endpoints="$ep" --dial-timeout=100ms --command-timeout=1s \
    get bench/0000000000 --print-value-only 2>/dev/null | grep -q .; do
    [ $SECONDS -lt $deadline ] || { echo "bench-restart: member $i not serving" >&2; exit 1; }
  done
  ready_s=$(since "$start")
  restarted_log="$dir/$(basename "$bin")-$i.log"
}
restart_follower TERM
term_s=$ready_s
restart_follower KILL
kill_s=$ready_s
if [ -n "${BENCH_RESTART_LOG:-}" ]; then cp "$restarted_log" "$BENCH_RESTART_LOG"; fi
line="{\"server\":\"$(basename "$bin")\",\"keys\":$keys,\"fill_s\":$fill_s,\"fill\":$fill,"
line+="\"memory_after_fill\":$mem,\"restart_sigterm_s\":$term_s,\"restart_sigkill_s\":$kill_s}"
echo "$line" | tee -a "$out"
