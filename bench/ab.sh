#!/usr/bin/env bash
# bench/ab.sh - two builds of mlc-api compared on one running instance: the
# instance's mlc-api is restarted on build A, then on build B, ROUNDS times
# (default 3), and COMMAND runs after each start.  On a machine shared with
# other work, figures from one instance with the builds alternated are the
# ones to compare; two instances measured minutes apart mostly measure the
# neighbours.
#
#   git stash; make; cp app/mlc-api /tmp/mlc-api-before; git stash pop; make
#   cp app/mlc-api /tmp/mlc-api-after
#   MLC_VAR=/tmp/x MLC_PORT=8091 ./scripts/mlc up
#   MLC_VAR=/tmp/x BASE_URL=http://127.0.0.1:8091 BENCH_RUNNING=1 \
#       bench/ab.sh /tmp/mlc-api-before /tmp/mlc-api-after -- bench/predict-cpu.sh
#
# The instance must have been started from this tree (its mlc-api is this
# tree's app/mlc-api, which is swapped for each build and put back at the
# end).  Only mlc-api restarts; the database, nginx, the spooler and the
# runtimes keep running.  Prints what COMMAND prints, under a line naming
# the build and round; never fails on figures.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BENCH_LIB=$ROOT/bench/lib
# shellcheck source=bench/lib/env.sh
. "$BENCH_LIB/env.sh"
bench_running_instance "$ROOT"
export BASE_URL

usage() { echo "usage: bench/ab.sh BUILD_A BUILD_B -- COMMAND [ARG...]" >&2; exit 2; }
if (($# < 4)) || [[ $3 != -- ]]; then
	usage
fi
A=$1 B=$2
shift 3
for f in "$A" "$B"; do
	[[ -f $f && -x $f ]] || { echo "bench/ab.sh: $f is not an executable file" >&2; exit 2; }
done
BIN=$ROOT/app/mlc-api
PID_FILE=$MLC_VAR/run/mlc-api.pid
[[ -f $PID_FILE ]] || { echo "bench/ab.sh: no mlc-api running for $MLC_VAR" >&2; exit 1; }
SAVED=$(mktemp "$ROOT/app/.mlc-api.ab.XXXXXX")
cp -p "$BIN" "$SAVED"

# Install a build as app/mlc-api: a new file renamed over the old one (a
# running binary cannot be written in place), newer than its objects so
# that the build step of "mlc up" leaves it alone.
install_build() {
	cp "$1" "$BIN.ab-new"
	mv -f "$BIN.ab-new" "$BIN"
}

restart_api() {
	local pid
	pid=$(cat "$PID_FILE" 2>/dev/null || true)
	if [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null; then
		for _ in $(seq 1 300); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	fi
	"$ROOT/scripts/mlc" up >/dev/null
	for _ in $(seq 1 100); do
		curl -fsS -m 2 "$BASE_URL/health" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "bench/ab.sh: mlc-api did not come back at $BASE_URL" >&2
	return 1
}

finish() {
	mv -f "$SAVED" "$BIN"
	restart_api || true
}
trap finish EXIT

for round in $(seq 1 "${ROUNDS:-3}"); do
	for build in A B; do
		[[ $build == A ]] && path=$A || path=$B
		install_build "$path"
		restart_api
		sleep "${BENCH_SETTLE:-2}"
		printf '== build %s (%s), round %s\n' "$build" "$path" "$round"
		"$@" || true
	done
done
