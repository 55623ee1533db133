#!/usr/bin/env bash
# bench/upload.sh - artifact upload throughput and worker memory.
#
#   bench/upload.sh            # sizes 1 MiB, 100 MiB, 1 GiB
#   BENCH_SIZES="1 100" bench/upload.sh
#
# Starts a private instance (own state dir and port, MLC_MAX_UPLOAD raised
# to 2 GiB), uploads a file of each size with curl -F through nginx, and
# reports MB/s next to two baselines measured in the same run on the same
# file: sha256sum (hashing alone) and cp into the state dir (writing alone;
# the upload does both, plus an fsync).  It also reports each worker's peak
# resident memory (VmHWM) before and after.  It prints figures, never fails
# on them.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZES=${BENCH_SIZES:-1 100 1024}
export MLC_MAX_UPLOAD=2147483648
. "$ROOT/bench/lib/instance.sh"
bench_instance_up "$ROOT"
master=$(cat "$MLC_VAR/run/mlc-api.pid")

hwm_kib() { # the largest VmHWM among the workers
	local pid max=0 v
	for pid in $(pgrep -P "$master"); do
		v=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
		((v > max)) && max=$v
	done
	echo "$max"
}

mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / 1048576 / s }'; }
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'; }

modelid=$(curl -fsS -X POST "$BASE_URL/model/add" -H 'Content-Type: application/json' \
	-d '{"modelname":"bench-upload","modelkind":"regression","drift_detection":null}' |
	/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["modelid"])')

printf '\nMLConnector upload benchmark: %s, %s CPUs\n\n' "$BASE_URL" "$(nproc)"
printf '%-8s %10s %12s %12s %10s %12s %12s\n' size "upload MB/s" "sha256 MB/s" "cp MB/s" "/sha256" "HWM before" "HWM after"
for mib in $SIZES; do
	f=$MLC_VAR/bench-$mib.bin
	# A valid pickle header, then incompressible bytes.
	{ printf '\x80\x04'; head -c $((mib * 1048576 - 2)) /dev/urandom; } >"$f"
	bytes=$(stat -c %s "$f")
	t_sha=$(secs sha256sum "$f")
	t_cp=$(secs cp "$f" "$MLC_VAR/bench-copy"); rm -f "$MLC_VAR/bench-copy"
	before=$(hwm_kib)
	t_up=$(secs curl -fsS -o /dev/null -F "file=@$f" -F file_kind=model "$BASE_URL/model/$modelid/upload")
	after=$(hwm_kib)
	printf '%-8s %10s %12s %12s %10s %9s KiB %9s KiB\n' "${mib}MiB" "$(mbps "$bytes" "$t_up")" \
		"$(mbps "$bytes" "$t_sha")" "$(mbps "$bytes" "$t_cp")" \
		"$(awk -v u="$t_up" -v s="$t_sha" 'BEGIN { printf "%.2f", s / u }')" "$before" "$after"
	rm -f "$f"
done
