#!/usr/bin/env bash
# A long simulation run outside CI: 10,000 seeds across every fault profile (about two minutes
# on two cores). Extra arguments go to chainfire-sim, e.g. --first=20001 or --profile=chaos.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh >/dev/null
exec build/bin/chainfire-sim --seeds=10000 "$@"
