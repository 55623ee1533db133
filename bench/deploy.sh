#!/usr/bin/env bash
# bench/deploy.sh - how long POST /deployment/add takes to reach
# "deployed", for the API document's Ridge and a 100-tree random forest,
# and what 20 deployments running at once cost in memory.  Runs on a
# private instance; prints figures, never fails on them.
#
#   bench/deploy.sh
#   BENCH_PARALLEL=10 bench/deploy.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/lib/instance.sh"
# The benchmark deploys BENCH_PARALLEL at once under one owner: lift the
# caps (MLC_MAX_DEPLOYMENTS*) for its private instance.
export MLC_MAX_DEPLOYMENTS=${MLC_MAX_DEPLOYMENTS:-0} MLC_MAX_DEPLOYMENTS_PER_OWNER=${MLC_MAX_DEPLOYMENTS_PER_OWNER:-0}
bench_instance_up "$ROOT"
/usr/bin/python3 "$ROOT/bench/lib/deploy.py" "${BENCH_PARALLEL:-20}"
