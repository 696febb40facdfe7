#!/usr/bin/env bash
# ASan + UBSan build of everything below gRPC (common, raft, node, storage, mvcc, backup, member)
# and the tests of common, raft and the simulation (which runs the real Member on the real
# KvStore and the production RaftLogStore on RocksDB's in-memory Env), in build-asan/. The simulation runs a shorter sweep here (CHAINFIRE_SIM_SEEDS, default 200) and
# no bug hunts (they are long and exercise the same code paths as the sweep).
# Not instrumented: RocksDB, gRPC and protobuf (Debian's builds); TSan is not run because
# those uninstrumented libraries make it report races it cannot see through (docs/testing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCHAINFIRE_CORE_ONLY=ON \
  -DCHAINFIRE_SANITIZE=address,undefined >/dev/null
ninja -C build-asan -j2
export CHAINFIRE_SIM_SEEDS="${CHAINFIRE_SIM_SEEDS:-200}"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
ctest --test-dir build-asan --output-on-failure -j2 --timeout 900 -E 'BugSwitch\.'
