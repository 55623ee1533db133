#!/usr/bin/env bash
# bench/api.sh - request rate and latency of the model API, next to nginx's
# own static answer (GET /nginx-baseline) as the ceiling.
#
#   BASE_URL=http://127.0.0.1:8090 bench/api.sh
#
# It seeds 1,000 models through POST /model/add, benchmarks the read
# routes, grows the registry to 100,000 models with direct SQL (MariaDB's
# Sequence engine) for the tag search, and ends with POST /model/add.  Each
# run is wrk with BENCH_THREADS threads, BENCH_CONNECTIONS connections for
# BENCH_DURATION.  It prints figures and never fails on them; it only stops
# when the instance cannot be reached or seeded.  Every bench row has a
# modelkind starting with "bench-" and is deleted at the end unless
# BENCH_KEEP=1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BENCH_LIB=$ROOT/bench/lib
# shellcheck source=bench/lib/env.sh
. "$BENCH_LIB/env.sh"
bench_running_instance "$ROOT"
THREADS=${BENCH_THREADS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
DURATION=${BENCH_DURATION:-10s}
SEARCH_MODELS=${BENCH_SEARCH_MODELS:-100000}

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

case $BASE_URL in
http://127.0.0.1:* | http://127.0.0.1 | http://localhost:* | http://localhost) ;;
*) die "BASE_URL must be http://127.0.0.1[:port] (got $BASE_URL): the benchmark only loads this machine" ;;
esac
command -v wrk >/dev/null || die "wrk is not installed (apt-get install wrk)"
curl -fsS -m 5 "$BASE_URL/health" >/dev/null \
	|| die "no healthy instance at $BASE_URL (start one with ./scripts/mlc up)"
bench_sql -N -e "SELECT 1" >/dev/null || die "cannot reach the instance's database (MLC_DB_* settings)"

OUT=$(mktemp -d /tmp/mlc-bench.XXXXXX)
cleanup() {
	if [[ -z ${BENCH_KEEP:-} ]]; then
		say "deleting the bench models (BENCH_KEEP=1 keeps them)"
		bench_sql -e "DELETE FROM operations WHERE deployment_id = 'bench-dep';
			DELETE FROM deployments WHERE deployment_id = 'bench-dep';
			DELETE FROM models WHERE modelkind LIKE 'bench-%'" || true
	fi
	rm -rf "$OUT"
}
trap cleanup EXIT

ROWS=()
BASELINE_RPS=

# run NAME PATH [LUA]: one wrk run; appends a row to the table.
run() {
	local name=$1 path=$2 lua=${3:-$BENCH_LIB/report.lua} out requests secs p50 p99 bad sockerr rps ratio
	out=$OUT/$(echo "$name" | tr -c 'A-Za-z0-9\n' '_').txt
	say "wrk $DURATION: $name"
	wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 5s -s "$lua" "$BASE_URL$path" >"$out" 2>&1 || true
	if ! read -r _ requests secs p50 p99 bad sockerr < <(grep '^RESULT ' "$out"); then
		say "wrk gave no result for $name:"; sed 's/^/  /' "$out" >&2
		ROWS+=("$(printf '%-40s %10s %9s %9s %9s %9s' "$name" - - - - -)")
		return 0
	fi
	rps=$(awk -v n="$requests" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
	[[ -n $BASELINE_RPS ]] || BASELINE_RPS=$rps
	ratio=$(awk -v a="$rps" -v b="$BASELINE_RPS" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
	((sockerr == 0)) || bad="$bad+${sockerr}e"
	ROWS+=("$(printf '%-40s %10s %9.2f %9.2f %9s %9s' "$name" "$rps" \
		"$(awk -v u="$p50" 'BEGIN { print u / 1000 }')" "$(awk -v u="$p99" 'BEGIN { print u / 1000 }')" \
		"$bad" "$ratio")")
}

# ---- seed: 1,000 models through the API -------------------------------------
say "registering 1,000 models through POST /model/add"
SEED_START=$(date +%s.%N)
MODEL_ID=$(/usr/bin/python3 "$BENCH_LIB/seed.py" "$BASE_URL" 1000) || die "seeding through the API failed"
export BENCH_MODEL_ID="$MODEL_ID"
SEED_API_SECS=$(awk -v a="$SEED_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

run "GET /nginx-baseline (static)" /nginx-baseline
run "GET /model/{id}" "/model/$MODEL_ID"
run "GET /model/all?limit=100" "/model/all?limit=100"
run "GET /model/getkind/bench-a?limit=100" "/model/getkind/bench-a?limit=100"

# ---- grow to $SEARCH_MODELS models with SQL ------------------------------------
TOTAL=$(bench_sql -N -e "SELECT COUNT(*) FROM models")
GROW=$((SEARCH_MODELS - TOTAL))
SQL_SECS=0
if ((GROW > 0)); then
	say "adding $GROW models with SQL (INSERT ... SELECT FROM seq_1_to_$GROW)"
	SEED_START=$(date +%s.%N)
	bench_sql <<-SQL || die "seeding with SQL failed"
		SET @first = (SELECT COALESCE(MAX(seq), 0) FROM models);
		INSERT INTO models (modelid, modelname, modelkind, hyperparameter, modelperformance,
		                    featurelist, modeltags, drift_detection, created_at, updated_at)
		SELECT UUID(), CONCAT('bench-sql-', seq), CONCAT('bench-', ELT(1 + seq % 4, 'a', 'b', 'c', 'd')),
		       '[{"parameter": "alpha", "value": 1}]',
		       '[{"metric": "Accuracy", "order": 1, "threshold": 0.89}]',
		       '[{"feature_name": "f0", "type": "cont", "kind": 0, "units": 1}]',
		       CONCAT('["bench"', IF(seq % 4 = 0, ', "fast"', ''), IF(seq % 3 = 0, ', "tree-based"', ''),
		              IF(seq % 5 = 0, ', "accuracy-focused"', ''), ']'),
		       '[{"is_true": 1, "method": 0}]', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6)
		FROM seq_1_to_$GROW;
		INSERT INTO model_tags (tag, model_seq, modelid)
		SELECT j.tag, m.seq, m.modelid
		FROM models m, JSON_TABLE(m.modeltags, '\$[*]' COLUMNS (tag VARCHAR(255) PATH '\$')) j
		WHERE m.seq > @first;
	SQL
	SQL_SECS=$(awk -v a="$SEED_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
fi
FAST=$(bench_sql -N -e "SELECT COUNT(*) FROM model_tags WHERE tag = 'fast'")
TOTAL=$(bench_sql -N -e "SELECT COUNT(*) FROM models")

run "GET /model/search?tags=fast&limit=100" "/model/search?tags=fast&limit=100"
run "POST /model/add" /model/add "$BENCH_LIB/post-model.lua"

# ---- inference operations: 1,000,000 stored, 1,000 owners ------------------------
OPS=${BENCH_OPERATIONS:-1000000}
say "adding a bench deployment and $OPS operations with SQL"
SEED_START=$(date +%s.%N)
bench_sql <<-SQL || die "seeding operations failed"
	INSERT IGNORE INTO deployments (deployment_id, modelid, model_version, ownerid, placement,
	    inference_data, status, desired, created_at, updated_at)
	VALUES ('bench-dep', '$MODEL_ID', 1, 'bench-owner-0', NULL, 0, 'stopped', 'stopped',
	    UTC_TIMESTAMP(6), UTC_TIMESTAMP(6));
	INSERT INTO operations (ownerid, deployment_id, modelid, data, result, timestamp)
	SELECT CONCAT('bench-owner-', seq % 1000), 'bench-dep', '$MODEL_ID',
	       CONCAT('[[', seq % 97, ', ', seq % 13, ', 0.5]]'), CONCAT('[', seq % 7, ']'),
	       UTC_TIMESTAMP(6)
	FROM seq_1_to_$OPS;
SQL
OPS_SECS=$(awk -v a="$SEED_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
# A kept bench deployment (BENCH_KEEP=1, an earlier run) has an earlier
# run's model: the operations must name the deployment's own.
BENCH_MODEL_ID=$(bench_sql -N -e "SELECT modelid FROM deployments WHERE deployment_id = 'bench-dep'")
export BENCH_MODEL_ID
run "POST /deployment/add/operation" /deployment/add/operation "$BENCH_LIB/post-operation.lua"
run "GET /deployment/get/opos/{owner} (100)" "/deployment/get/opos/bench-owner-7?limit=100"

# ---- report ---------------------------------------------------------------------
cat <<-REPORT

	MLConnector API benchmark: $BASE_URL, wrk $THREADS threads, $CONNECTIONS connections, $DURATION per route
	seeding: 1,000 models via POST /model/add in ${SEED_API_SECS}s; $((GROW > 0 ? GROW : 0)) via SQL in ${SQL_SECS}s
	search ran over $TOTAL models, $FAST of them tagged fast; $OPS operations stored (SQL, ${OPS_SECS}s); $(nproc) CPUs; MLC_WORKERS=${MLC_WORKERS:-0 (one per core)}

	$(printf '%-40s %10s %9s %9s %9s %9s' route req/s "p50 ms" "p99 ms" non-2xx "/baseline")
REPORT
printf '%s\n' "${ROWS[@]}"
