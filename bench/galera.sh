#!/usr/bin/env bash
# bench/galera.sh - the registry on one MariaDB server against the Galera
# topology (three nodes, two mlc-api pools behind one nginx upstream;
# docs/SCALING.md), in the same run, on this machine:
#
#   bench/galera.sh
#
# It starts a private instance of each kind in turn (mlc up, MLC_TOPOLOGY
# single, then galera; MLC_AUTH=off on loopback), measures POST /model/add
# and GET /model/{id} with wrk (BENCH_THREADS threads, BENCH_CONNECTIONS
# connections, BENCH_DURATION per route), stops it, and prints the figures
# with the cluster's ratio to the single server.  Everything runs on the
# same cores, so the ratios are what to compare, not the rates.  It never
# fails on the figures.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BENCH_LIB=$ROOT/bench/lib
THREADS=${BENCH_THREADS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
DURATION=${BENCH_DURATION:-10s}

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

command -v wrk >/dev/null || die "wrk is not installed (apt-get install wrk)"
[[ -e /usr/lib/galera/libgalera_smm.so ]] || die "the Galera provider is not installed (apt-get install galera-4 rsync)"

OUT=$(mktemp -d /tmp/mlc-bench.XXXXXX)
VAR=
down() {
	if [[ -n $VAR ]]; then
		MLC_VAR=$VAR "$ROOT/scripts/mlc" down >/dev/null 2>&1 || true
		rm -rf "$VAR"
		VAR=
	fi
}
trap 'down; rm -rf "$OUT"' EXIT

declare -A RPS P50 P99 BAD

# measure TOPOLOGY: start that instance, run both routes, stop it.
measure() {
	local topo=$1 port base id out name path lua requests secs p50 p99 bad sockerr
	VAR=$(mktemp -d /tmp/mlc-bench.XXXXXX)
	chmod 755 "$VAR"
	port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	say "starting the $topo instance"
	MLC_VAR=$VAR MLC_PORT=$port MLC_TOPOLOGY=$topo MLC_AUTH=off "$ROOT/scripts/mlc" up >/dev/null
	base=http://127.0.0.1:$port
	id=$(curl -fsS -H 'Content-Type: application/json' \
		-d '{"modelname":"bench-get","modelkind":"bench-get","drift_detection":null}' \
		"$base/model/add" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["modelid"])') \
		|| die "could not add a model to the $topo instance"
	for name in post get; do
		if [[ $name == post ]]; then
			path=/model/add lua=$BENCH_LIB/post-model.lua
		else
			path=/model/$id lua=$BENCH_LIB/report.lua
		fi
		out=$OUT/$topo-$name.txt
		say "wrk $DURATION: $topo $name"
		wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 5s -s "$lua" "$base$path" >"$out" 2>&1 || true
		if read -r _ requests secs p50 p99 bad sockerr < <(grep '^RESULT ' "$out"); then
			RPS[$topo-$name]=$(awk -v n="$requests" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
			P50[$topo-$name]=$(awk -v u="$p50" 'BEGIN { printf "%.2f", u / 1000 }')
			P99[$topo-$name]=$(awk -v u="$p99" 'BEGIN { printf "%.2f", u / 1000 }')
			BAD[$topo-$name]=$((bad + sockerr))
		else
			say "wrk gave no result:"; sed 's/^/  /' "$out" >&2
		fi
	done
	down
}

LOAD_BEFORE=$(uptime)
measure single
measure galera
LOAD_AFTER=$(uptime)

echo "uptime before: $LOAD_BEFORE"
echo "uptime after:  $LOAD_AFTER"
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION; MLC_WORKERS=${MLC_WORKERS:-default} per pool"
echo
echo "| route | single req/s | p50 / p99 ms | Galera, 2 pools req/s | p50 / p99 ms | Galera / single | non-2xx (single, Galera) |"
echo "|---|---:|---:|---:|---:|---:|---|"
for name in post get; do
	label="POST /model/add"
	[[ $name == post ]] || label="GET /model/{id}"
	s=${RPS[single-$name]:-0} c=${RPS[galera-$name]:-0}
	ratio=$(awk -v a="$c" -v b="$s" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
	echo "| $label | $s | ${P50[single-$name]:--} / ${P99[single-$name]:--} | $c |" \
		"${P50[galera-$name]:--} / ${P99[galera-$name]:--} | $ratio |" \
		"${BAD[single-$name]:--}, ${BAD[galera-$name]:--} |"
done
