# Sourced by scripts/bench.sh and scripts/bench-check-perf.sh: starts a local 3-member cluster
# of `bin` (ChainFire or etcd, same flags) with data under $dir, pids appended to `pids`, and
# waits (bounded, 20 s) until it takes a write.
run_cluster() { # binary base-port
  local bin=$1 base=$2 cluster="" i
  for i in 1 2 3; do cluster+="b$i=http://127.0.0.1:$((base + 10 + i)),"; done
  cluster=${cluster%,}
  for i in 1 2 3; do
    "$bin" --name "b$i" --data-dir "$dir/$(basename "$bin")-$i" \
      --listen-client-urls "http://127.0.0.1:$((base + i))" \
      --advertise-client-urls "http://127.0.0.1:$((base + i))" \
      --listen-peer-urls "http://127.0.0.1:$((base + 10 + i))" \
      --initial-advertise-peer-urls "http://127.0.0.1:$((base + 10 + i))" \
      --initial-cluster "$cluster" --initial-cluster-token bench \
      >"$dir/$(basename "$bin")-$i.log" 2>&1 &
    pids+=($!)
  done
  local eps="127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2)),127.0.0.1:$((base + 3))"
  for _ in $(seq 1 100); do
    if ETCDCTL_API=3 etcdctl --endpoints="$eps" --command-timeout=1s put bench/ready 1 \
      >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  echo "bench: the $bin cluster did not elect a leader" >&2
  exit 1
}
