#!/usr/bin/env bash
# bench/predict.sh - POST /deployment/{id}/predict through nginx, the C
# gateway and the model runtime, beside the baseline measured in the same
# run: the model's own in-process predict() on one row.  Runs on a private
# instance; prints figures, never fails on them.
#
#   bench/predict.sh                 # 10 s per measurement
#   BENCH_DURATION=5s bench/predict.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BENCH_LIB=$ROOT/bench/lib
DURATION=${BENCH_DURATION:-10s}
. "$ROOT/bench/lib/instance.sh"
bench_instance_up "$ROOT"
OUT=$MLC_VAR/bench-predict
mkdir -p "$OUT"
/usr/bin/python3 "$BENCH_LIB/predict_setup.py" "$OUT"
read -r base_ridge base_iris base_rfr <"$OUT/baseline"

# run NAME CONNECTIONS LUA: prints req/s, p50 ms, p99 ms, non-2xx
run() {
	local out=$OUT/$1-$2.txt
	wrk -t1 -c"$2" -d"$DURATION" --timeout 10s -s "$OUT/$3.lua" "$BASE_URL" >"$out" 2>&1 || true
	awk '/^RESULT/ { printf "%-44s %5d %9.0f %9.2f %9.2f %7d\n", name, c, $2 / $3, $4 / 1000, $5 / 1000, $6 + $7 }' \
		name="$1" c="$2" "$out"
}

printf '\nMLConnector predict benchmark: %s, %s CPUs, wrk %s per line\n' "$BASE_URL" "$(nproc)" "$DURATION"
printf 'baseline, in-process predict() of one row: Ridge %s us, iris forest %s us, diabetes forest %s us\n\n' \
	"$base_ridge" "$base_iris" "$base_rfr"
printf '%-44s %5s %9s %9s %9s %7s\n' measurement conns req/s "p50 ms" "p99 ms" non-2xx
run "Ridge, one row, no explain" 1 ridge-row
run "Ridge, one row, no explain" 16 ridge-row
run "Ridge, batch of 1000 rows, no explain" 1 ridge-batch1000
run "iris forest (100 trees), explain" 1 iris-explain
run "diabetes forest (100 trees), explain" 1 diabetes-rf-explain
printf '\ngateway + runtime overhead = p50 at 1 connection minus the in-process baseline\n'
