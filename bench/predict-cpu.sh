#!/usr/bin/env bash
# bench/predict-cpu.sh - CPU time one prediction costs, by process: the
# Ridge deployment of bench/predict.sh under wrk (16 connections, 8 s
# after a 2 s warm-up), with the CPU ticks of the model runtime, the API
# workers, mariadbd and nginx read from /proc before and after.  CPU time
# is the steadiest figure on a shared machine (waiting for a CPU costs
# none); compare builds on one instance with bench/ab.sh and
# BENCH_RUNNING=1.  Prints figures, never fails on them.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BENCH_LIB=$ROOT/bench/lib
DURATION=${BENCH_DURATION:-8s}
. "$ROOT/bench/lib/instance.sh"
# BENCH_RUNNING=1: the instance at BASE_URL (MLC_VAR) instead of a new one,
# for comparing builds on one instance (bench/ab.sh).
if [[ -n ${BENCH_RUNNING:-} ]]; then
	bench_predict_running "$ROOT"
else
	bench_predict_up "$ROOT"
fi
master=$(cat "$MLC_VAR/run/mlc-api.pid")
workers=$(pgrep -P "$master" | tr '\n' ' ')
runtime=$(pgrep -f "^/usr/bin/python3 -I /run/mlc-scripts/mlc-runtime --dir $MLC_VAR/deployments/bench-ridge\$")
db=$(pgrep -f "mariadbd.*$MLC_VAR" | tr '\n' ' ')
nginx=$(pgrep -f "nginx.*$MLC_VAR" | tr '\n' ' ')
for p in $nginx; do nginx="$nginx $(pgrep -P "$p" | tr '\n' ' ')"; done

ticks() {
	local s=0 p
	for p in "$@"; do
		s=$((s + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
	done
	echo "$s"
}

wrk -t1 -c16 -d2s -s "$OUT/ridge-row.lua" "$BASE_URL" >/dev/null 2>&1 || true
# shellcheck disable=SC2086
set -- "$(ticks $runtime)" "$(ticks $workers)" "$(ticks $db)" "$(ticks $nginx)"
wrk -t1 -c16 -d"$DURATION" -s "$OUT/ridge-row.lua" "$BASE_URL" >"$OUT/cpu-wrk.txt" 2>&1 || true
# shellcheck disable=SC2086
awk -v hz="$(getconf CLK_TCK)" -v r=$(($(ticks $runtime) - $1)) -v w=$(($(ticks $workers) - $2)) \
	-v d=$(($(ticks $db) - $3)) -v x=$(($(ticks $nginx) - $4)) -v up="$(uptime)" '
	/^RESULT/ { f = 1e6 / hz / $2
		printf "\nRidge, one row, 16 connections: %.0f req/s, %d requests, %d non-2xx\n", $2 / $3, $2, $6 + $7
		printf "CPU per request (us): runtime %.0f, API workers %.0f, mariadbd %.0f, nginx %.0f; total %.0f\n",
			r * f, w * f, d * f, x * f, (r + w + d + x) * f
		printf "uptime: %s\n", up }' "$OUT/cpu-wrk.txt"
