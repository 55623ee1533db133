#!/usr/bin/env bash
# bench/soak.sh - a long mixed load on a private instance: does the service
# stay correct (no 5xx) and flat (memory and open files of every process)?
#
#   bench/soak.sh                        # 64 connections for 300 s
#   SOAK_SECONDS=60 SOAK_CONNECTIONS=16 bench/soak.sh
#
# CONNECTIONS threads (bench/lib/soak.py), each on its own kept-alive
# connection, mix reads, model adds and deletes, 16 KiB uploads, predicts
# and deploy/delete churn for SOAK_SECONDS.  Every SOAK_SAMPLE seconds (10)
# the RSS and open fds of the mlc-api master and workers, nginx, mariadbd,
# mlc-spooler, mlc-drift and the runtimes are recorded.  It prints
# throughput, p50/p99 per request kind, 5xx and connection errors apart,
# and the process figures (first / after warm-up / last / max), and leaves
# soak.json in SOAK_OUT (default: a directory under /tmp, printed).  At the
# end it also counts the error lines of the instance's logs.  It
# never fails on its figures.  Loopback only: the instance is private, with
# the shipped configuration (MLC_WORKERS and the other settings can be set
# in the environment as for mlc up).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_=${SOAK_SECONDS:-300}
CONNECTIONS=${SOAK_CONNECTIONS:-64}
OUT=${SOAK_OUT:-$(mktemp -d /tmp/mlc-soak.XXXXXX)}
mkdir -p "$OUT"
. "$ROOT/bench/lib/instance.sh"
bench_instance_up "$ROOT"
printf 'soak: instance at %s (state in %s), %s connections for %s s\n' "$BASE_URL" "$MLC_VAR" \
	"$CONNECTIONS" "$SECONDS_" >&2
/usr/bin/python3 "$ROOT/bench/lib/soak.py" "$BASE_URL" "$MLC_VAR" "$SECONDS_" "$CONNECTIONS" "$OUT" \
	| tee "$OUT/report.txt"
# What the instance itself logged as errors meanwhile.
{
	printf '\nlog lines at level error: mlc-api %s, mlc-spooler %s; nginx [error]/[crit]/[alert]: %s\n' \
		"$(grep -c ' error ' "$MLC_VAR/log/mlc-api.log" 2>/dev/null || true)" \
		"$(grep -ci 'error' "$MLC_VAR/log/mlc-spooler.log" 2>/dev/null || true)" \
		"$(grep -cE '\[(error|crit|alert|emerg)\]' "$MLC_VAR/log/nginx-error.log" 2>/dev/null || true)"
	grep -hE ' error |\[(error|crit|alert|emerg)\]' "$MLC_VAR/log/mlc-api.log" \
		"$MLC_VAR/log/nginx-error.log" 2>/dev/null | sed -E 's/^[^ ]+ //' | cut -c1-160 | sort | uniq -c \
		| sort -rn | head -10 || true
} | tee -a "$OUT/report.txt"
printf 'soak: report in %s/report.txt\n' "$OUT" >&2
