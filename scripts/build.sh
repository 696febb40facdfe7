#!/usr/bin/env bash
# Configures (once) and builds everything into build/ with Ninja, two jobs, ccache.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache
fi
ninja -C build -j2
