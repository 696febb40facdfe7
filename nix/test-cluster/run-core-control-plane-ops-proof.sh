#!/usr/bin/env bash
# The fixed-membership ops proof (see ops_proof.py): exit status 0 when every part of the
# contract held on a live cluster. Usage: run-core-control-plane-ops-proof.sh [--work-dir DIR]
set -euo pipefail
exec "$(dirname "$0")/cluster" "$@" ops-proof
