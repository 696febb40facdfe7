# Sourced by scripts/bench.sh and scripts/bench-check-perf.sh: starts a local 3-member cluster
# of `bin` (ChainFire or etcd, same flags) with data under $dir, pids appended to `pids`, and
# waits (bounded, 20 s) until it takes a write. With $bench_tls set to a directory: mutual TLS on
# client and peer ports for both, with one CA and certificates made there by openssl (once);
# client_tls then holds the client's flags (etcdctl's, which chainfire-bench also takes).
# start_member starts one member again with the same flags (scripts/bench-restart.sh).
scheme=http
server_tls=()
client_tls=()
if [ -n "${bench_tls:-}" ]; then
  scheme=https
  if [ ! -f "$bench_tls/member.crt" ]; then
    mkdir -p "$bench_tls"
    (
      cd "$bench_tls"
      openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench-ca -keyout ca.key \
        -out ca.crt 2>/dev/null
      for who in member client; do
        printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >"$who.ext"
        openssl req -newkey rsa:2048 -nodes -subj "/CN=$who" -keyout "$who.key" \
          -out "$who.csr" 2>/dev/null
        openssl x509 -req -in "$who.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
          -extfile "$who.ext" -out "$who.crt" 2>/dev/null
      done
    )
  fi
  server_tls=(--cert-file "$bench_tls/member.crt" --key-file "$bench_tls/member.key"
    --trusted-ca-file "$bench_tls/ca.crt" --client-cert-auth
    --peer-cert-file "$bench_tls/member.crt" --peer-key-file "$bench_tls/member.key"
    --peer-trusted-ca-file "$bench_tls/ca.crt" --peer-client-cert-auth)
  client_tls=(--cacert "$bench_tls/ca.crt" --cert "$bench_tls/client.crt"
    --key "$bench_tls/client.key")
fi

start_member() { # binary base-port i: starts member b$i in the background, pid in member_pid
  local bin=$1 base=$2 i=$3 cluster="" j
  for j in 1 2 3; do cluster+="b$j=$scheme://127.0.0.1:$((base + 10 + j)),"; done
  cluster=${cluster%,}
  "$bin" --name "b$i" --data-dir "$dir/$(basename "$bin")-$i" \
    --listen-client-urls "$scheme://127.0.0.1:$((base + i))" \
    --advertise-client-urls "$scheme://127.0.0.1:$((base + i))" \
    --listen-peer-urls "$scheme://127.0.0.1:$((base + 10 + i))" \
    --initial-advertise-peer-urls "$scheme://127.0.0.1:$((base + 10 + i))" \
    --initial-cluster "$cluster" --initial-cluster-token bench \
    ${server_tls[@]+"${server_tls[@]}"} >>"$dir/$(basename "$bin")-$i.log" 2>&1 &
  member_pid=$!
}

run_cluster() { # binary base-port
  local bin=$1 base=$2 i
  for i in 1 2 3; do
    start_member "$bin" "$base" "$i"
    pids+=("$member_pid")
  done
  local eps="127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2)),127.0.0.1:$((base + 3))"
  for _ in $(seq 1 100); do
    if ETCDCTL_API=3 etcdctl --endpoints="$eps" ${client_tls[@]+"${client_tls[@]}"} \
      --command-timeout=1s put bench/ready 1 >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  echo "bench: the $bin cluster did not elect a leader" >&2
  exit 1
}
