#!/usr/bin/env bash
# bench/auth.sh - what bearer tokens cost: GET /model/{id} and a one-row
# predict, measured with MLC_AUTH=on and MLC_AUTH=off in the same run, on
# the same private instance (mlc-api is restarted between the two; nginx,
# the database and the model runtime stay).  The requests are the same
# bytes in both modes: they carry the Authorization header, which mlc-api
# ignores with auth off.  Rounds alternate on, off, on, off so that a
# drifting machine does not favour one mode.  Prints figures, never fails
# on them.
#
#   bench/auth.sh                                # 10 s per measurement, 2 rounds
#   BENCH_DURATION=5s BENCH_ROUNDS=3 bench/auth.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BENCH_LIB=$ROOT/bench/lib
DURATION=${BENCH_DURATION:-10s}
ROUNDS=${BENCH_ROUNDS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
. "$ROOT/bench/lib/env.sh"
. "$ROOT/bench/lib/instance.sh"

say() { printf 'bench: %s\n' "$*" >&2; }

export MLC_AUTH=on
bench_instance_up "$ROOT"
OUT=$MLC_VAR/bench-auth
mkdir -p "$OUT"
TOKEN=$(bench_sql -B -N -e "CALL mlc_token_add('bench', 'write', NULL)" | cut -f5)
[[ $TOKEN == mlc_* ]] || { say "could not make a token"; exit 1; }
export MLC_TEST_TOKEN=$TOKEN
read -r MODEL_ID DEP < <(/usr/bin/python3 "$BENCH_LIB/auth_setup.py")

# Lua for one request, the token in its headers.
lua() {
	local name=$1 method=$2 path=$3 body=${4:-}
	{
		printf 'wrk.method = "%s"\nwrk.path = "%s"\n' "$method" "$path"
		printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$TOKEN"
		if [[ -n $body ]]; then
			printf 'wrk.headers["Content-Type"] = "application/json"\nwrk.body = [==[%s]==]\n' "$body"
		fi
		printf 'dofile(os.getenv("BENCH_LIB") .. "/report.lua")\n'
	} >"$OUT/$name.lua"
}
lua model GET "/model/$MODEL_ID"
lua predict POST "/deployment/$DEP/predict" '{"data": [0.038, 0.05, 0.062, 0.022, -0.044, -0.035, -0.043, -0.003, 0.02, -0.018]}'

# mlc-api with MLC_AUTH=$1 (the other processes keep running).
restart_api() {
	local pid
	pid=$(cat "$MLC_VAR/run/mlc-api.pid")
	kill "$pid"
	while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	MLC_AUTH=$1 "$ROOT/scripts/mlc" up >/dev/null
	local want=401
	[[ $1 == off ]] && want=200
	[[ $(curl -s -o /dev/null -w '%{http_code}' "$BASE_URL/model/$MODEL_ID") == "$want" ]] \
		|| { say "mlc-api did not come back with MLC_AUTH=$1"; exit 1; }
}

# measure NAME CONNECTIONS: requests/s, p50 us, p99 us, non-2xx
measure() {
	local out=$OUT/$1-$2-$MODE-$ROUND.txt
	wrk -t"$(( $2 < 2 ? 1 : 2 ))" -c"$2" -d"$DURATION" --timeout 10s -s "$OUT/$1.lua" "$BASE_URL" \
		>"$out" 2>&1 || true
	grep -q '^RESULT' "$out" || { say "wrk gave no result:"; sed 's/^/  /' "$out" >&2; echo "0 0 0 0"; return; }
	awk '/^RESULT/ { printf "%.0f %d %d %d\n", $2 / $3, $4, $5, $6 + $7 }' "$out"
}

declare -A RPS P50 P99 BAD
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
	for MODE in on off; do
		[[ $MODE == on && $ROUND == 1 ]] || restart_api "$MODE"
		# Warm the restarted workers (statement caches, runtime connections).
		for w in model predict; do
			wrk -t2 -c"$CONNECTIONS" -d2s -s "$OUT/$w.lua" "$BASE_URL" >/dev/null 2>&1 || true
		done
		for m in "model $CONNECTIONS" "predict 1" "predict $CONNECTIONS"; do
			set -- $m
			say "round $ROUND, auth $MODE: $1, $2 connections"
			read -r rps p50 p99 bad < <(measure "$1" "$2")
			key="$1 $2 $MODE"
			RPS[$key]=$(( ${RPS[$key]:-0} + rps ))
			P50[$key]="${P50[$key]:-}${P50[$key]:+ }$p50"
			P99[$key]="${P99[$key]:-}${P99[$key]:+ }$p99"
			BAD[$key]=$(( ${BAD[$key]:-0} + bad ))
		done
	done
done

printf '\nMLConnector auth benchmark: %s CPUs, wrk 2 threads (1 for 1 connection), %s per measurement, %d rounds (on/off alternating)\n\n' \
	"$(nproc)" "$DURATION" "$ROUNDS"
printf '%-40s %6s %12s %12s %8s %8s %10s\n' measurement conns "req/s on" "req/s off" "p50 on" "p50 off" "on / off"
for m in "model $CONNECTIONS" "predict 1" "predict $CONNECTIONS"; do
	set -- $m
	on=$(( ${RPS[$1 $2 on]} / ROUNDS )) off=$(( ${RPS[$1 $2 off]} / ROUNDS ))
	name="GET /model/{id}"
	[[ $1 == predict ]] && name="POST /deployment/{id}/predict (1 row)"
	median() { tr ' ' '\n' <<<"$1" | sort -n | awk '{ a[NR] = $1 } END { printf "%.2f", a[int((NR + 1) / 2)] / 1000 }'; }
	printf '%-40s %6s %12s %12s %8s %8s %10s\n' "$name" "$2" "$on" "$off" \
		"$(median "${P50[$1 $2 on]}")" "$(median "${P50[$1 $2 off]}")" \
		"$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.3f", b ? a / b : 0 }')"
	(( ${BAD[$1 $2 on]} + ${BAD[$1 $2 off]} == 0 )) || say "$name: non-2xx answers: ${BAD[$1 $2 on]} on, ${BAD[$1 $2 off]} off"
done
