#!/usr/bin/env bash
# The run command: installs what is missing, builds, and starts a local 3-member cluster on
# loopback in the foreground. Ctrl-C stops all three cleanly (SIGTERM, then waits).
# Data lives in work/local-cluster/ and survives restarts of this script.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
bin=build/bin/chainfire
dir=work/local-cluster
mkdir -p "$dir"
cluster="m1=http://127.0.0.1:2380,m2=http://127.0.0.1:22380,m3=http://127.0.0.1:32380"
pids=()
start() { # name client-port peer-port
  "$bin" --name "$1" --data-dir "$dir/$1" \
    --listen-client-urls "http://127.0.0.1:$2" --advertise-client-urls "http://127.0.0.1:$2" \
    --listen-peer-urls "http://127.0.0.1:$3" --initial-advertise-peer-urls "http://127.0.0.1:$3" \
    --initial-cluster "$cluster" --initial-cluster-token chainfire-local \
    >>"$dir/$1.log" 2>&1 &
  pids+=($!)
}
stop() {
  echo; echo "stopping the cluster..."
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  echo "stopped; data kept in $dir"
  exit 0
}
trap stop INT TERM
start m1 2379 2380
start m2 22379 22380
start m3 32379 32380
cat <<MSG
ChainFire local cluster (3 members) is starting; logs in $dir/*.log
  endpoints: 127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379
  try:       ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 put hello world
             ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:2379 get hello
             ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 endpoint status -w table
Press Ctrl-C to stop.
MSG
# Exit (and stop the others) if a member dies on its own.
while true; do
  for p in "${pids[@]}"; do
    if ! kill -0 "$p" 2>/dev/null; then
      echo "a member exited; see $dir/*.log"
      stop
    fi
  done
  sleep 1 &
  wait $! || true
done
