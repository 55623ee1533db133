#!/usr/bin/env bash
# bench/drift.sh - time and memory of one drift check over a large
# inference history.
#
#   bench/drift.sh                      # a private instance, 1,000,000 operations
#   MLC_VAR=/path/to/var bench/drift.sh # the running instance of that state dir
#   BENCH_ROWS=200000 bench/drift.sh
#
# It registers a model with 10 numeric features (direct SQL), stores a
# training CSV of 10,000 rows as its data artifact, and seeds BENCH_ROWS
# operations (default 1,000,000) with INSERT ... SELECT from MariaDB's
# Sequence engine, each a one-row 2-D list as the predict gateway stores it
# (feature f0 shifted by half a standard deviation).  Then, each in a fresh
# Python process, it carries out one drift run through mlcpy.drift
# (request_run + run_one: read the rows, test, store the metrics) for each
# method with the default MLC_DRIFT_MAX_ROWS (100,000 newest rows), and once
# with MLC_DRIFT_MAX_ROWS=BENCH_ROWS (every row).  It prints the elapsed time
# of the check, the process's peak resident memory (ru_maxrss) and how much
# of it the check added over the process after its imports, and which
# features were found drifted (f0 should be; with 100,000 inference rows an
# unshifted feature may be flagged now and then, because the test also sees
# the sampling noise of the 10,000 training rows), and each check's time
# as a multiple of a baseline measured in the same run, before and after
# the checks: one plain SELECT COUNT(*), SUM(LENGTH(data)) over the
# model's operations (reading every recorded input once, the floor of any
# check that reads them).  It prints figures and
# never fails on them.  Then the drift cache (mlcpy.drift_cache, in a
# directory of its own): the cold fold of every row, warm checks of every
# row, one after BENCH_NEW (10,000) new operations, and the default
# MLC_DRIFT_MAX_ROWS, each beside the uncached check (MLC_DRIFT_CACHE=off,
# as the checks above run).  The bench rows are deleted at the end
# (BENCH_KEEP=1 keeps them); a private instance is removed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROWS=${BENCH_ROWS:-1000000}
PY=/usr/bin/python3

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

[[ $ROWS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROWS must be a positive integer (got $ROWS)"

# shellcheck source=bench/lib/env.sh
. "$ROOT/bench/lib/env.sh"
if [[ -n ${MLC_VAR:-} ]]; then
	bench_load_config "$ROOT"
	if [[ -z ${MLC_DB_HOST:-} && ! -S $MLC_DB_SOCKET ]]; then
		die "no database socket at $MLC_DB_SOCKET (start the instance with ./scripts/mlc up)"
	fi
	PRIVATE=0
else
	# shellcheck source=bench/lib/instance.sh
	. "$ROOT/bench/lib/instance.sh"
	say "starting a private instance"
	bench_instance_up "$ROOT"
	bench_load_config "$ROOT"
	PRIVATE=1
fi
bench_sql -N -e "SELECT 1" >/dev/null || die "cannot reach the instance's database (MLC_DB_* settings)"
ARTIFACTS=${MLC_ARTIFACTS:-$MLC_VAR/artifacts}
[[ $ARTIFACTS == /* ]] || ARTIFACTS=$ROOT/$ARTIFACTS

MODELID=$($PY -c 'import uuid; print(uuid.uuid4())')
cleanup() {
	if [[ ${BENCH_KEEP:-0} != 1 && $PRIVATE == 0 ]]; then
		bench_sql -e "DELETE FROM operations WHERE modelid = '$MODELID';
			DELETE FROM drift_metrics WHERE modelid = '$MODELID';
			DELETE FROM drift_runs WHERE modelid = '$MODELID';
			DELETE FROM models WHERE modelid = '$MODELID';" || true
		rm -rf "${ARTIFACTS:?}/$MODELID"
	fi
}
trap 'cleanup; [[ $PRIVATE == 1 ]] && { "$ROOT/scripts/mlc" down >/dev/null 2>&1 || true; rm -rf "$MLC_VAR"; }; true' EXIT

# ---- the model and its training data ----------------------------------------

featurelist=$($PY -c 'import json; print(json.dumps([{"feature_name": "f%d" % i, "type": "cont", "kind": 0, "units": 1} for i in range(10)]))')
rel=$MODELID/data/v1-bench-train.csv
mkdir -p "$ARTIFACTS/$MODELID/data"
$PY - "$ARTIFACTS/$rel" <<'EOF'
import sys
import numpy as np
import pandas as pd
rng = np.random.default_rng(1)
# (U + U + U - 1.5) * 2: mean 0, sd 1, as the SQL below draws it
cols = {"f%d" % i: np.round((rng.random(10000) + rng.random(10000) + rng.random(10000) - 1.5) * 2, 6)
        for i in range(10)}
cols["target"] = rng.integers(0, 2, 10000)
pd.DataFrame(cols).to_csv(sys.argv[1], index=False)
EOF
size=$(stat -c %s "$ARTIFACTS/$rel")
sha=$(sha256sum "$ARTIFACTS/$rel" | cut -d' ' -f1)
bench_sql -e "INSERT INTO models (modelid, modelname, modelkind, featurelist, drift_detection,
		created_at, updated_at)
	VALUES ('$MODELID', 'bench-drift', 'bench-drift', '$featurelist',
		'[{\"is_true\": 0, \"method\": 0}]', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6));
	INSERT INTO artifacts (modelid, filekind, version, filename, contenttype, path, size, sha256,
		created_at)
	VALUES ('$MODELID', 'data', 1, 'bench-train.csv', 'text/csv', '$rel', $size, '$sha',
		UTC_TIMESTAMP(6));"

# ---- the operations ------------------------------------------------------------

value() { # one feature value: (U + U + U - 1.5) * 2 + shift
	printf 'ROUND((RAND() + RAND() + RAND() - 1.5) * 2 + %s, 6)' "$1"
}
cols="$(value 0.5)"
for _ in 1 2 3 4 5 6 7 8 9; do cols="$cols, $(value 0)"; done
say "seeding $ROWS operations"
t0=$(date +%s.%N)
chunk=100000
for ((lo = 1; lo <= ROWS; lo += chunk)); do
	hi=$((lo + chunk - 1 < ROWS ? lo + chunk - 1 : ROWS))
	bench_sql -e "INSERT INTO operations (ownerid, deployment_id, modelid, data, result, timestamp)
		SELECT 'bench', 'bench-drift', '$MODELID', CONCAT('[[', CONCAT_WS(',', $cols), ']]'), '[0]',
			UTC_TIMESTAMP(6) - INTERVAL (($ROWS - seq) * 100) MICROSECOND
		FROM seq_${lo}_to_${hi}"
done
t1=$(date +%s.%N)
say "seeded in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"

# ---- the checks ---------------------------------------------------------------------

check() { # method max_rows [cache: on|off]
	bench_sql -e "UPDATE models SET drift_detection = '[{\"is_true\": 0, \"method\": $1}]'
		WHERE modelid = '$MODELID'; DELETE FROM drift_metrics WHERE modelid = '$MODELID';"
	MLC_DRIFT_CACHE=${3:-off} MLC_DRIFT_CACHE_DIR=$CACHE_DIR MLC_DRIFT_MAX_ROWS=$2 \
		$PY - "$ROOT" "$MODELID" <<'EOF'
import json, resource, sys, time
sys.path.insert(0, sys.argv[1] + "/scripts")
import numpy, pandas, scipy.stats  # noqa: F401  (imports are not the check's cost)
from mlcpy import config, db, drift, log

cfg = config.load(sys.argv[1])
conn = db.connect(cfg)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
run_id = drift.request_run(conn, sys.argv[2], "bench")
cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])  # noqa: E731
t0, c0 = time.monotonic(), cpu()
status = drift.run_one(conn, cfg, None, run_id, sys.argv[2])
took, cpu_s = time.monotonic() - t0, cpu() - c0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with conn.cursor() as cur:
    cur.execute("SELECT method, n_infer, drift_detected FROM drift_metrics WHERE run_id = %s "
                "ORDER BY id", (run_id,))
    rows = cur.fetchall()
    cur.execute("SELECT reason FROM drift_runs WHERE run_id = %s", (run_id,))
    reason = (cur.fetchone() or {}).get("reason")
print(json.dumps({"status": status, "reason": reason, "took": took, "cpu": cpu_s, "peak_kib": peak,
                  "before_kib": before,
                  "method": rows[0]["method"] if rows else None,
                  "rows": rows[0]["n_infer"] if rows else 0,
                  "drift": [r["drift_detected"] for r in rows]}))
EOF
}

baseline() { # seconds of one plain read of every operation's data (the floor of a check)
	$PY - "$ROOT" "$MODELID" <<'EOF'
import sys, time
sys.path.insert(0, sys.argv[1] + "/scripts")
from mlcpy import config, db
conn = db.connect(config.load(sys.argv[1]))
with conn.cursor() as cur:
    t0 = time.monotonic()
    cur.execute("SELECT COUNT(*), SUM(LENGTH(data)) FROM operations WHERE modelid = %s", (sys.argv[2],))
    cur.fetchall()
    print("%.3f" % (time.monotonic() - t0))
EOF
}

# The drift cache of this run: its own directory, so that nothing else
# (an instance's daemon) folds the model meanwhile.
CACHE_DIR=$(mktemp -d /tmp/mlc-bench-drift-cache.XXXXXX)
trap 'rm -rf "$CACHE_DIR"; cleanup; [[ $PRIVATE == 1 ]] && { "$ROOT/scripts/mlc" down >/dev/null 2>&1 || true; rm -rf "$MLC_VAR"; }; true' EXIT

fold() { # max_rows: build, or bring up to date, the model's cache in a fresh process
	MLC_DRIFT_CACHE_DIR=$CACHE_DIR MLC_DRIFT_MAX_ROWS=$1 $PY - "$ROOT" "$MODELID" <<'EOF'
import json, resource, sys, time
sys.path.insert(0, sys.argv[1] + "/scripts")
import numpy, pandas, scipy.stats  # noqa: F401  (imports are not the fold's cost)
from mlcpy import config, db, drift, drift_cache

cfg = config.load(sys.argv[1])
conn = db.connect(cfg)
model = drift._select(conn, "SELECT featurelist FROM models WHERE modelid = %s", (sys.argv[2],))
features = drift.inference_features(conn, cfg, sys.argv[2], model[0]["featurelist"])
conn.commit()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
dfd = drift_cache._open_dir(cfg)
cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])  # noqa: E731
t0, c0 = time.monotonic(), cpu()
with drift_cache.Lock(dfd, sys.argv[2]):
    c, done = drift_cache.update(conn, cfg, dfd, sys.argv[2], features, drift.settings(cfg)[1])
took, cpu_s = time.monotonic() - t0, cpu() - c0
print(json.dumps({"took": took, "cpu": cpu_s, "rows": c.rows, "before_kib": before,
                  "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
EOF
}

show() { # label json: one line of the cache's table
	$PY -c '
import json, sys
r = json.loads(sys.argv[2])
if r.get("status", "completed") != "completed":
    print("%-40s %s: %s" % (sys.argv[1], r["status"], r["reason"]))
else:
    print("%-40s %9d %9.2f %7.2f %7.2f %9.0f MB %11.0f MB  %s" % (
        sys.argv[1], r["rows"], r["took"], r["took"] / max(float(sys.argv[3]), 1e-3), r["cpu"],
        r["peak_kib"] / 1024.0, (r["peak_kib"] - r["before_kib"]) / 1024.0,
        "".join(str(d) for d in r.get("drift", []))))
' "$1" "$2" "$BASE"
}

BASE=$(baseline)
printf '\nMLConnector drift check: %d operations, 10 numeric features (f0 shifted), %s CPUs, load %s\n' \
	"$ROWS" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'baseline: SELECT COUNT(*), SUM(LENGTH(data)) over the %d operations: %.2f s\n\n' "$ROWS" "$BASE"
printf '%-11s %9s %9s %7s %12s %14s  %s\n' method "rows" seconds "x base" "peak RSS" "added by check" \
	"drift per feature f0..f9"
for spec in "0 100000" "1 100000" "2 100000" "0 $ROWS" "2 $ROWS"; do
	read -r method max <<<"$spec"
	out=$(check "$method" "$max")
	$PY -c '
import json, sys
r = json.loads(sys.argv[1])
if r["status"] != "completed":
    print("%-11s %s: %s" % (sys.argv[2], r["status"], r["reason"]))
else:
    print("%-11s %9d %9.2f %7.1f %9.0f MB %11.0f MB  %s" % (
        r["method"], r["rows"], r["took"], r["took"] / max(float(sys.argv[3]), 1e-3),
        r["peak_kib"] / 1024.0, (r["peak_kib"] - r["before_kib"]) / 1024.0,
        "".join(str(d) for d in r["drift"])))
' "$out" "$method" "$BASE"
done

# ---- the drift cache (MLC_DRIFT_CACHE=on) ---------------------------------------------
# The checks above read the database (MLC_DRIFT_CACHE=off).  Here: the same
# check uncached, the cold fold (building the cache of every row), warm
# checks, and a warm check after BENCH_NEW (10,000) new operations arrived
# (it folds them first), each beside the uncached one of the same data.
# "cpu s" is the Python process's CPU time (user + system) for the step:
# steadier than the wall clock on a shared machine, but without MariaDB's
# (most of an uncached check's, little of a cached one's).

printf '\nThe drift cache, every row (MLC_DRIFT_MAX_ROWS=%d):\n' "$ROWS"
printf '%-40s %9s %9s %7s %7s %12s %14s  %s\n' step "rows" seconds "x base" "cpu s" "peak RSS" "added" \
	"drift f0..f9"
show "uncached check (KS)" "$(check 2 "$ROWS" off)"
show "cold fold (building the cache)" "$(fold "$ROWS")"
show "warm check (KS)" "$(check 2 "$ROWS" on)"
show "warm check (mean shift)" "$(check 0 "$ROWS" on)"
NEW=${BENCH_NEW:-10000}
bench_sql -e "INSERT INTO operations (ownerid, deployment_id, modelid, data, result, timestamp)
	SELECT 'bench', 'bench-drift', '$MODELID', CONCAT('[[', CONCAT_WS(',', $cols), ']]'), '[0]',
		UTC_TIMESTAMP(6) + INTERVAL seq MICROSECOND
	FROM seq_1_to_$NEW"
show "warm check after $NEW new operations (KS)" "$(check 2 "$ROWS" on)"
show "uncached check of the same (KS)" "$(check 2 "$ROWS" off)"
show "default MAX_ROWS, cached (KS)" "$(check 2 100000 on)"
show "default MAX_ROWS, uncached (KS)" "$(check 2 100000 off)"
printf 'cache directory: %s\n' "$(du -sh "$CACHE_DIR" | cut -f1)"

printf '\nbaseline again: %.2f s (the load moves; compare the two)\n' "$(baseline)"
printf '\n(MLC_DRIFT_MAX_ROWS: 100000 by default; the last rows read every operation.)\n'
