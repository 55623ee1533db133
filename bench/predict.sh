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
bench_predict_up "$ROOT"
read -r base_ridge base_iris base_rfr <"$OUT/baseline"

# nginx's own static answer: the ceiling of any route on this machine.
printf 'wrk.path = "/nginx-baseline"\ndofile(os.getenv("BENCH_LIB") .. "/report.lua")\n' >"$OUT/static.lua"

# run NAME CONNECTIONS LUA: prints req/s, p50 ms, p99 ms, non-2xx, and the
# req/s over nginx static's at the same connections (STATIC_<c>, this run)
run() {
	local out=$OUT/$1-$2.txt static
	wrk -t1 -c"$2" -d"$DURATION" --timeout 10s -s "$OUT/$3.lua" "$BASE_URL" >"$out" 2>&1 || true
	static=STATIC_$2
	awk '/^RESULT/ { r = $2 / $3; printf "%-44s %5d %9.0f %9.2f %9.2f %7d %9s\n", name, c, r, $4 / 1000, $5 / 1000, $6 + $7, (s > 0 ? sprintf("%.4f", r / s) : "-") }' \
		name="$1" c="$2" s="${!static:-0}" "$out"
}
static_rate() {
	awk '/^RESULT/ { printf "%.0f", $2 / $3 }' "$OUT/nginx static answer (nginx-baseline)-$1.txt"
}

# Warm-up, not measured: a fresh instance is still busy right after its
# deployments start (runtimes loading, MariaDB flushing its new tables),
# which showed as p99s of 50-60 ms at one connection.  Each deployment is
# called for a few seconds, then the instance is left to settle.
for lua in ridge-row iris-explain diabetes-rf-explain; do
	wrk -t1 -c4 -d3s -s "$OUT/$lua.lua" "$BASE_URL" >/dev/null 2>&1 || true
done
sleep "${BENCH_SETTLE:-10}"

printf '\nMLConnector predict benchmark: %s, %s CPUs, wrk %s per line\n' "$BASE_URL" "$(nproc)" "$DURATION"
printf 'baseline, in-process predict() of one row: Ridge %s us, iris forest %s us, diabetes forest %s us\n\n' \
	"$base_ridge" "$base_iris" "$base_rfr"
printf '%-44s %5s %9s %9s %9s %7s %9s\n' measurement conns req/s "p50 ms" "p99 ms" non-2xx "/static"
run "nginx static answer (nginx-baseline)" 1 static
STATIC_1=$(static_rate 1)
run "nginx static answer (nginx-baseline)" 16 static
STATIC_16=$(static_rate 16)
run "Ridge, one row, no explain" 1 ridge-row
run "Ridge, one row, no explain" 16 ridge-row
run "Ridge, batch of 1000 rows, no explain" 1 ridge-batch1000
run "iris forest (100 trees), explain" 1 iris-explain
run "diabetes forest (100 trees), explain" 1 diabetes-rf-explain
awk -v b="$base_ridge" '/^RESULT/ { printf "\nRidge: gateway + runtime overhead at 1 connection = p50 - in-process predict() = %.2f ms\n", $4 / 1000 - b / 1000 }' \
	"$OUT/Ridge, one row, no explain-1.txt"
printf '/static: req/s over nginx static at the same connections, both in this run\n'
