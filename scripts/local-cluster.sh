#!/usr/bin/env bash
# The local 3-member cluster on loopback, in the background: [--tls] start | stop | status.
# Members m1, m2, m3; client endpoints 127.0.0.1:2379, :22379, :32379; peers :2380, :22380,
# :32380; token chainfire-local; data and logs in work/local-cluster/. Needs build/bin (run
# scripts/build.sh first). scripts/run-local-cluster.sh runs the same cluster in the foreground.
#
# --tls: the same cluster with mutual TLS on client and peer ports (its own ports and data:
# clients https://127.0.0.1:2479, :22479, :32479; peers :2480, :22480, :32480; work/local-cluster-
# tls/). On first start it makes a CA, one member certificate (127.0.0.1, localhost) and a client
# certificate under work/local-cluster-tls/pki/ with openssl; the members read ca-bundle.crt,
# member.crt and member.key there and follow changes to them (docs/security.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/bin/chainfire
tls=false
if [ "${1:-}" = "--tls" ]; then
  tls=true
  shift
fi
if $tls; then
  dir=work/local-cluster-tls
  pki=$dir/pki
  scheme=https
  members=(m1:2479:2480 m2:22479:22480 m3:32479:32480)
  etcdctl_tls=(--cacert "$pki/ca-bundle.crt" --cert "$pki/client.crt" --key "$pki/client.key")
else
  dir=work/local-cluster
  scheme=http
  members=(m1:2379:2380 m2:22379:22380 m3:32379:32380)
  etcdctl_tls=()
fi
cluster=""
endpoints=""
for spec in "${members[@]}"; do
  IFS=: read -r name client peer <<<"$spec"
  cluster+="${cluster:+,}$name=$scheme://127.0.0.1:$peer"
  endpoints+="${endpoints:+,}$scheme://127.0.0.1:$client"
done

running() { [ -f "$dir/$1.pid" ] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }

# The TLS mode's certificates, made once (kept across restarts).
make_pki() {
  [ -f "$pki/member.crt" ] && return 0
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=chainfire-local-ca \
      -keyout ca.key -out ca.crt 2>/dev/null
    for who in member client; do
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' \
        >"$who.ext"
      openssl req -newkey rsa:2048 -nodes -subj "/CN=$who" -keyout "$who.key" -out "$who.csr" \
        2>/dev/null
      openssl x509 -req -in "$who.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
        -extfile "$who.ext" -out "$who.crt" 2>/dev/null
    done
    cp ca.crt ca-bundle.crt
    chmod 600 ./*.key
  )
}

start() {
  mkdir -p "$dir"
  local tls_flags=()
  if $tls; then
    make_pki
    tls_flags=(--cert-file "$pki/member.crt" --key-file "$pki/member.key"
      --trusted-ca-file "$pki/ca-bundle.crt" --client-cert-auth
      --peer-cert-file "$pki/member.crt" --peer-key-file "$pki/member.key"
      --peer-trusted-ca-file "$pki/ca-bundle.crt" --peer-client-cert-auth)
  fi
  for spec in "${members[@]}"; do
    IFS=: read -r name client peer <<<"$spec"
    if running "$name"; then continue; fi
    "$bin" --name "$name" --data-dir "$dir/$name" \
      --listen-client-urls "$scheme://127.0.0.1:$client" \
      --advertise-client-urls "$scheme://127.0.0.1:$client" \
      --listen-peer-urls "$scheme://127.0.0.1:$peer" \
      --initial-advertise-peer-urls "$scheme://127.0.0.1:$peer" \
      --initial-cluster "$cluster" --initial-cluster-token chainfire-local \
      ${tls_flags[@]+"${tls_flags[@]}"} >>"$dir/$name.log" 2>&1 &
    echo $! >"$dir/$name.pid"
  done
  # Bounded wait until the members agree on a leader.
  for _ in $(seq 1 100); do
    if ETCDCTL_API=3 etcdctl --endpoints="$endpoints" ${etcdctl_tls[@]+"${etcdctl_tls[@]}"} \
        --dial-timeout=1s endpoint status -w json 2>/dev/null | grep -q '"leader":[1-9]'; then
      echo "local cluster up: $endpoints (logs in $dir/*.log)"
      if $tls; then
        echo "etcdctl flags: --endpoints=$endpoints ${etcdctl_tls[*]}"
      fi
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
  ETCDCTL_API=3 etcdctl --endpoints="$endpoints" ${etcdctl_tls[@]+"${etcdctl_tls[@]}"} \
    --dial-timeout=1s endpoint status -w table
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 [--tls] start|stop|status" >&2; exit 2 ;;
esac
