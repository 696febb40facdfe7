#!/usr/bin/env bash
# The run command: installs what is missing, builds, and starts a local 3-member cluster on
# loopback in the foreground (scripts/local-cluster.sh does the same in the background).
# Ctrl-C stops all three cleanly (SIGTERM, then waits). Data lives in work/local-cluster/ and
# survives restarts of this script. `--tls`: the mutual-TLS variant (scripts/local-cluster.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=()
dir=work/local-cluster
if [ "${1:-}" = "--tls" ]; then
  mode=(--tls)
  dir=work/local-cluster-tls
fi
scripts/install-deps.sh
scripts/build.sh
scripts/local-cluster.sh ${mode[@]+"${mode[@]}"} start
if [ ${#mode[@]} -eq 0 ]; then
  cat <<MSG
ChainFire local cluster (3 members) is running; logs in work/local-cluster/*.log
  endpoints: 127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379
  try:       ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 put hello world
             ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:2379 get hello
             ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 endpoint status -w table
Press Ctrl-C to stop.
MSG
else
  echo "ChainFire local cluster (3 members, mutual TLS) is running; logs in $dir/*.log. Press Ctrl-C to stop."
fi
trap 'echo; scripts/local-cluster.sh ${mode[@]+"${mode[@]}"} stop; exit 0' INT TERM
# Exit (and stop the others) if a member dies on its own.
while true; do
  for name in m1 m2 m3; do
    if ! kill -0 "$(cat "$dir/$name.pid" 2>/dev/null)" 2>/dev/null; then
      echo "member $name exited; see $dir/$name.log"
      scripts/local-cluster.sh ${mode[@]+"${mode[@]}"} stop
      exit 1
    fi
  done
  sleep 1 &
  wait $! || true
done
