#!/usr/bin/env bash
# The run command: installs what is missing, builds, and starts a local 3-member cluster on
# loopback in the foreground (scripts/local-cluster.sh does the same in the background).
# Ctrl-C stops all three cleanly (SIGTERM, then waits). Data lives in work/local-cluster/ and
# survives restarts of this script.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
scripts/local-cluster.sh start
cat <<MSG
ChainFire local cluster (3 members) is running; logs in work/local-cluster/*.log
  endpoints: 127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379
  try:       ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 put hello world
             ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:2379 get hello
             ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 endpoint status -w table
Press Ctrl-C to stop.
MSG
trap 'echo; scripts/local-cluster.sh stop; exit 0' INT TERM
# Exit (and stop the others) if a member dies on its own.
while true; do
  for name in m1 m2 m3; do
    if ! kill -0 "$(cat "work/local-cluster/$name.pid" 2>/dev/null)" 2>/dev/null; then
      echo "member $name exited; see work/local-cluster/$name.log"
      scripts/local-cluster.sh stop
      exit 1
    fi
  done
  sleep 1 &
  wait $! || true
done
