#!/usr/bin/env bash
# The local 3-member cluster on loopback, in the background: start | stop | status.
# Members m1, m2, m3; client endpoints 127.0.0.1:2379, :22379, :32379; peers :2380, :22380,
# :32380; token chainfire-local; data and logs in work/local-cluster/. Needs build/bin (run
# scripts/build.sh first). scripts/run-local-cluster.sh runs the same cluster in the foreground.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/bin/chainfire
dir=work/local-cluster
cluster="m1=http://127.0.0.1:2380,m2=http://127.0.0.1:22380,m3=http://127.0.0.1:32380"
endpoints=127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379
members=(m1:2379:2380 m2:22379:22380 m3:32379:32380)

running() { [ -f "$dir/$1.pid" ] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }

start() {
  mkdir -p "$dir"
  for spec in "${members[@]}"; do
    IFS=: read -r name client peer <<<"$spec"
    if running "$name"; then continue; fi
    "$bin" --name "$name" --data-dir "$dir/$name" \
      --listen-client-urls "http://127.0.0.1:$client" \
      --advertise-client-urls "http://127.0.0.1:$client" \
      --listen-peer-urls "http://127.0.0.1:$peer" \
      --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
      --initial-cluster "$cluster" --initial-cluster-token chainfire-local \
      >>"$dir/$name.log" 2>&1 &
    echo $! >"$dir/$name.pid"
  done
  # Bounded wait until the members agree on a leader.
  for _ in $(seq 1 100); do
    if ETCDCTL_API=3 etcdctl --endpoints="$endpoints" --dial-timeout=1s endpoint status \
        -w json 2>/dev/null | grep -q '"leader":[1-9]'; then
      echo "local cluster up: $endpoints (logs in $dir/*.log)"
      return 0
    fi
    sleep 0.2
  done
  echo "local cluster: no leader after 20 s; see $dir/*.log" >&2
  return 1
}

stop() {
  for spec in "${members[@]}"; do
    name=${spec%%:*}
    if running "$name"; then kill -TERM "$(cat "$dir/$name.pid")"; fi
  done
  for spec in "${members[@]}"; do
    name=${spec%%:*}
    for _ in $(seq 1 100); do running "$name" || break; sleep 0.1; done
    if running "$name"; then kill -KILL "$(cat "$dir/$name.pid")"; fi
    rm -f "$dir/$name.pid"
  done
  echo "local cluster stopped; data kept in $dir"
}

status() {
  ETCDCTL_API=3 etcdctl --endpoints="$endpoints" --dial-timeout=1s endpoint status -w table
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
