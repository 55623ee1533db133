#!/usr/bin/env bash
# bench/cpu.sh - CPU time per request of the API's read and write routes,
# next to nginx's static answer, for a running instance that bench/api.sh
# seeded with BENCH_KEEP=1 (the bench-* models and operations).
#
#   MLC_VAR=/path/to/var BASE_URL=http://127.0.0.1:8090 bench/cpu.sh
#
# On a machine shared with other work, requests per second mostly measure
# the neighbours; the CPU seconds the instance's own processes (nginx
# workers, mlc-api workers, mariadbd) spend per request do not depend on
# them nearly as much.  For each route: one wrk run of BENCH_DURATION
# (default 5s), the processes' user+system time from /proc before and
# after, divided by the requests served.  Prints figures, never fails on
# them.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BENCH_LIB=$ROOT/bench/lib
. "$BENCH_LIB/env.sh"
bench_running_instance "$ROOT"
DURATION=${BENCH_DURATION:-5s}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
RUN=$MLC_VAR/run
TICK=$(getconf CLK_TCK)
MODEL_ID=$(bench_sql -N -e "SELECT modelid FROM models WHERE modelkind LIKE 'bench-%' ORDER BY seq DESC LIMIT 1")
[[ -n $MODEL_ID ]] || { echo "bench: no bench-* model: run BENCH_KEEP=1 bench/api.sh first" >&2; exit 1; }

# pids of one group: nginx workers, mlc-api workers, mariadbd
group_pids() {
	case $1 in
	nginx) pgrep -P "$(cat "$RUN/nginx.pid")" ;;
	api) pgrep -P "$(cat "$RUN/mlc-api.pid")" ;;
	db) cat "$RUN/mysqld.pid" ;;
	esac
}
# CPU ticks (user + system) of a group's processes
ticks() {
	local sum=0 p f
	for p in $(group_pids "$1"); do
		f=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		f=${f##*) }
		set -- $f
		sum=$((sum + ${12} + ${13}))
	done
	echo "$sum"
}

printf '%-40s %8s %10s %10s %10s %10s %9s\n' route req/s "nginx us" "api us" "db us" "total us" "/static"
STATIC=
run() {
	local name=$1 path=$2 lua=${3:-$BENCH_LIB/report.lua} out n0 a0 d0 n1 a1 d1 reqs secs
	out=$(mktemp)
	n0=$(ticks nginx) a0=$(ticks api) d0=$(ticks db)
	wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --timeout 5s -s "$lua" "$BASE_URL$path" >"$out" 2>&1 || true
	n1=$(ticks nginx) a1=$(ticks api) d1=$(ticks db)
	read -r _ reqs secs _ < <(grep '^RESULT ' "$out") || { echo "$name: no result" >&2; rm -f "$out"; return; }
	rm -f "$out"
	awk -v name="$name" -v r="$reqs" -v s="$secs" -v n=$((n1 - n0)) -v a=$((a1 - a0)) -v d=$((d1 - d0)) \
	    -v t="$TICK" -v st="${STATIC:-0}" 'BEGIN {
		us = 1e6 / t / (r > 0 ? r : 1); tot = (n + a + d) * us
		ratio = "1.000"
		if (st > 0) ratio = sprintf("%.3f", st / tot)
		printf "%-40s %8.0f %10.1f %10.1f %10.1f %10.1f %9s\n", name, r / s, n * us, a * us, d * us, tot, ratio
		print tot > "/dev/fd/3" }' 3>"$OUT_STATIC"
	[[ -n $STATIC ]] || STATIC=$(cat "$OUT_STATIC")
}
OUT_STATIC=$(mktemp)
trap 'rm -f "$OUT_STATIC"' EXIT
run "GET /nginx-baseline (static)" /nginx-baseline
run "GET /model/{id}" "/model/$MODEL_ID"
run "GET /model/all?limit=100" "/model/all?limit=100"
run "GET /model/getkind/bench-a?limit=100" "/model/getkind/bench-a?limit=100"
run "GET /model/search?tags=fast&limit=100" "/model/search?tags=fast&limit=100"
run "GET /deployment/get/opos/{owner} (100)" "/deployment/get/opos/bench-owner-7?limit=100"
run "POST /model/add" /model/add "$BENCH_LIB/post-model.lua"
echo "(/static: nginx's CPU per static answer divided by the route's CPU per request, all three process groups)"
