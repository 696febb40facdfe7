#!/usr/bin/env bash
# Installs the Debian 12 packages ChainFire builds and tests with, if any is missing.
# Needs root (or sudo) only when something must be installed.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkgconf ccache git
  protobuf-compiler protobuf-compiler-grpc libprotobuf-dev libgrpc++-dev
  librocksdb-dev libjemalloc-dev libabsl-dev libspdlog-dev libcli11-dev libgtest-dev libgmock-dev
  libssl-dev openssl zlib1g-dev nlohmann-json3-dev nix-bin clang-14 libclang-rt-14-dev
  libevent-dev libboost1.74-dev prometheus libjwt-dev
  etcd-client python3-etcd3 python3-etcd3gw python3-grpcio python3-protobuf python3-pytest
  patroni postgresql-15  # the JSON gateway's proof: Patroni running PostgreSQL HA on ChainFire
  etcd-server  # etcd 3.4: the reference the differential tests compare ChainFire with
  golang-etcd-server-dev  # etcd 3.4.23's .proto files: test_proto_names.py compares ours
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
# etcd-server's package enables an etcd service on 2379/2380 under systemd: the tests start
# their own etcd on free ports, and the local cluster needs those ports.
if [[ " ${missing[*]} " == *" etcd-server "* ]] && command -v systemctl >/dev/null &&
  [ -d /run/systemd/system ]; then
  "${sudo_cmd[@]}" systemctl disable --now etcd >/dev/null 2>&1 || true
fi
