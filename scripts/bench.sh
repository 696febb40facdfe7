#!/usr/bin/env bash
# Side-by-side throughput: the same client (build/bin/chainfire-bench, C++ gRPC, closed loop)
# against a local 3-member ChainFire cluster and, if etcd 3.4 is installed (Debian package
# etcd-server), a local 3-member etcd cluster with the same flags. Both fsync every
# acknowledged write. Runs puts, then linearizable gets, spread over all three members.
# Usage: scripts/bench.sh [--tls] [seconds per run (10)] [clients (200)] [value bytes (256)]
# --tls: both clusters with mutual TLS on client and peer ports (the same certificates, made
# for the run), and the client over TLS with a client certificate.
# Prints one JSON line per run and writes them to work/bench/bench-<UTC time>.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
tls_run=false
if [ "${1:-}" = "--tls" ]; then
  tls_run=true
  shift
fi
seconds=${1:-10}
clients=${2:-200}
val_size=${3:-256}
mkdir -p work/bench
out=work/bench/bench-$(date -u +%Y%m%dT%H%M%SZ).jsonl
dir=$(mktemp -d /tmp/chainfire-bench.XXXX)
pids=()
cleanup() { kill -9 "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
scripts/build.sh >/dev/null
if $tls_run; then bench_tls=$dir/pki; fi

# shellcheck source=bench-cluster.sh
source scripts/bench-cluster.sh

measure() { # name base-port
  local eps="127.0.0.1:$(($2 + 1)),127.0.0.1:$(($2 + 2)),127.0.0.1:$(($2 + 3))" op line
  for op in put get; do
    line=$(build/bin/chainfire-bench --endpoints "$eps" --op "$op" --clients "$clients" \
      --conns 30 --seconds "$seconds" --val-size "$val_size" \
      ${client_tls[@]+"${client_tls[@]}"})
    line="{\"server\":\"$1\",\"tls\":$tls_run,${line#\{}"
    echo "$line" | tee -a "$out"
  done
}

run_cluster build/bin/chainfire 25300
measure chainfire 25300
kill -9 "${pids[@]}"
wait 2>/dev/null || true
pids=()
if command -v etcd >/dev/null; then
  run_cluster "$(command -v etcd)" 25400
  measure "etcd-$(etcd --version | head -1 | awk '{print $3}')" 25400
fi
echo "results in $out"
