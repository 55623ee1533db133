/*
 * route-drift.c - /model/{id}/drift routes: ask for a drift check (mlc-spooler
 * runs it) and read the results it stored in drift_metrics.  Runs and
 * results are the model owner's: only the owner or an admin asks for them
 * or reads them (they are made from the inputs the model was sent).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "log.h"
#include "routes.h"
#include "stamp.h"

/* MLC_DRIFT_MIN_ROWS: the inference rows a drift check needs; mlc-drift
 * reads the same key with the same default (scripts/mlcpy/drift.py). */
#define MIN_ROWS_KEY "MLC_DRIFT_MIN_ROWS"
#define MIN_ROWS_DEFAULT 10

static int first_ll(void *ctx, char **c, const unsigned long *l, unsigned n)
{
	*(long long *)ctx = c[0] ? atoll(c[0]) : 0;
	return 1;
}

/*
 * Inference rows recorded for the model: the sum of operations.input_rows,
 * which MariaDB computes when an operation is inserted (the rule is in
 * sql/019-operation-rows.sql); mlc-drift adds up the same column.
 */
static long long inference_rows(struct mlc_req *r, const char *id, struct mlc_err *err)
{
	struct mlc_param p[] = { MLC_PSTR(id) };
	long long n = 0;

	if (mlc_db_exec(r->db, "SELECT COALESCE(SUM(input_rows), 0) FROM operations "
			"FORCE INDEX (operations_model_rows) WHERE modelid = ?",
			p, 1, first_ll, &n, err) < 0)
		return -1;
	return n;
}

static int count_rows(struct mlc_req *r, const char *sql, const char *id, long long *n,
		      struct mlc_err *err)
{
	struct mlc_param p[] = { MLC_PSTR(id) };

	*n = 0;
	return mlc_db_exec(r->db, sql, p, 1, first_ll, n, err) < 0 ? -1 : 0;
}

struct waiting {
	char run_id[65];
	char created_at[32];
};

static int waiting_row(void *ctx, char **c, const unsigned long *l, unsigned n)
{
	struct waiting *w = ctx;

	snprintf(w->run_id, sizeof(w->run_id), "%s", c[0]);
	snprintf(w->created_at, sizeof(w->created_at), "%s", c[1]);
	return 1;
}

/*
 * The model's waiting run in w, or a new one: at most one run per model
 * waits.  The model row is locked so that concurrent requests (and
 * mlc-drift's scheduler, which locks it too) queue one run; the unique key
 * drift_runs_one_waiting holds it for any other writer.  Returns 0 (w
 * filled), 1 when the model is gone, -1 with err.
 */
static int queue_run(struct mlc_req *r, const char *id, struct waiting *w, struct mlc_err *err)
{
	struct mlc_param key[] = { MLC_PSTR(id) };
	int attempt;
	long long n;

	/* A transaction rolled back by a conflict (a deadlock; on a Galera
	 * cluster, two hosts queueing the same model's run at once) wrote
	 * nothing: it is made again, and then finds the other's run. */
	for (attempt = 1;; attempt++) {
		w->run_id[0] = '\0';
		if (mlc_db_begin(r->db, err) < 0)
			goto again;
		n = mlc_db_exec(r->db, "SELECT 1 FROM models WHERE modelid = ? FOR UPDATE", key, 1,
				NULL, NULL, err);
		if (n == 0) {
			mlc_db_rollback(r->db);
			return 1;
		}
		if (n < 0 ||
		    mlc_db_exec(r->db, "SELECT run_id, created_at FROM drift_runs WHERE modelid = ? "
				"AND status = 'waiting' LIMIT 1", key, 1, waiting_row, w, err) < 0)
			goto again;
		if (!w->run_id[0]) {
			struct mlc_param p[3];

			mlc_uuid4(w->run_id);
			/* the time the answer shows is the row's: the database's */
			if (mlc_db_now(r->db, w->created_at, err) < 0)
				goto again;
			p[0] = MLC_PSTR(w->run_id);
			p[1] = MLC_PSTR(id);
			p[2] = MLC_PSTR(w->created_at);
			if (mlc_db_exec(r->db, "INSERT INTO drift_runs (run_id, modelid, status, "
					"requested_by, created_at) VALUES (?, ?, 'waiting', 'api', ?)",
					p, 3, NULL, NULL, err) < 0) {
				/* A waiting run inserted by a writer that does not lock
				 * the model row (the SQL console): answer with that one. */
				if (err->code == 409 && attempt == 1) {
					mlc_db_rollback(r->db);
					continue;
				}
				goto again;
			}
		}
		if (mlc_db_commit(r->db, err) == 0)
			return 0;
again:
		if (!mlc_db_retry(r->db, attempt, 4, 0, err, r->request_id,
				  "drift run of model %s", id))
			return -1;
	}
}

/* POST /model/{id}/drift/run: 202 with the run's id; the check itself
 * runs in mlc-drift.  While a run of the model waits, the answer is that
 * run (202 all the same): asking again does not queue another. */
void mlc_h_drift_run(struct mlc_req *r)
{
	const char *id = mlc_param(r, "model_id");
	struct mlc_err err = { 0, "" };
	long long data, rows, min_rows = mlc_config_long(MIN_ROWS_KEY, MIN_ROWS_DEFAULT);
	struct waiting w;
	json_object *o;
	int rc;

	if (mlc_model_owned_or_reply(r, id, "check the drift of") < 0)
		return;
	if (count_rows(r, "SELECT COUNT(*) FROM artifacts WHERE modelid = ? AND filekind = 'data'",
		       id, &data, &err) < 0 ||
	    (rows = inference_rows(r, id, &err)) < 0) {
		mlc_reply_err(r, &err);
		return;
	}
	if (!data) {
		mlc_error(r, 409, "model '%s' has no training data to compare with; upload "
				 "it with POST /model/%s/upload (file_kind=data)", id, id);
		return;
	}
	if (min_rows < 1)
		min_rows = MIN_ROWS_DEFAULT;
	if (rows < min_rows) {
		mlc_error(r, 409, "model '%s' has %lld recorded inference rows; drift "
				 "detection needs at least %lld", id, rows, min_rows);
		return;
	}
	rc = queue_run(r, id, &w, &err);
	if (rc < 0) {
		mlc_reply_err(r, &err);
		return;
	}
	if (rc > 0) {
		mlc_error(r, 404, "model '%s' not found", id);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "run_id", json_object_new_string(w.run_id));
	json_object_object_add(o, "modelid", json_object_new_string(id));
	json_object_object_add(o, "status", json_object_new_string("waiting"));
	json_object_object_add(o, "inference_rows", json_object_new_int64(rows));
	json_object_object_add(o, "created_at", mlc_iso_time(w.created_at));
	mlc_reply_json(r, 202, o);
}

#define METRIC_COLS "id, run_id, modelid, feature, type, method, statistic, p_value, " \
	"drift_detected, n_train, n_infer, window_start, window_end, timestamp, note"

static json_object *double_or_null(const char *s)
{
	return s ? json_object_new_double(strtod(s, NULL)) : NULL;
}

static json_object *metric_from_row(char **c)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_int64(atoll(c[0])));
	json_object_object_add(o, "run_id", json_object_new_string(c[1]));
	json_object_object_add(o, "modelid", json_object_new_string(c[2]));
	json_object_object_add(o, "feature", json_object_new_string(c[3]));
	json_object_object_add(o, "type", json_object_new_string(c[4]));
	json_object_object_add(o, "method", json_object_new_string(c[5]));
	json_object_object_add(o, "statistic", double_or_null(c[6]));
	json_object_object_add(o, "p_value", double_or_null(c[7]));
	json_object_object_add(o, "drift_detected", json_object_new_boolean(atoi(c[8])));
	json_object_object_add(o, "n_train", json_object_new_int64(atoll(c[9])));
	json_object_object_add(o, "n_infer", json_object_new_int64(atoll(c[10])));
	json_object_object_add(o, "window_start", mlc_iso_time(c[11]));
	json_object_object_add(o, "window_end", mlc_iso_time(c[12]));
	json_object_object_add(o, "timestamp", mlc_iso_time(c[13]));
	json_object_object_add(o, "note", c[14] ? json_object_new_string(c[14]) : NULL);
	return o;
}

/* GET /model/{id}/drift?skip&limit&feature=: results, newest first; every
 * one unless asked for less. */
void mlc_h_drift_list(struct mlc_req *r)
{
	const char *id = mlc_param(r, "model_id"), *feature = mlc_query_get(&r->query, "feature");
	long skip, limit;

	if (mlc_paging_or_422(r, MLC_NO_LIMIT, &skip, &limit) < 0 ||
	    mlc_model_owned_or_reply(r, id, "read the drift results of") < 0)
		return;
	if (feature) {
		struct mlc_param p[] = { MLC_PSTR(id), MLC_PSTR(feature) };

		mlc_reply_page(r, "SELECT " METRIC_COLS " FROM drift_metrics WHERE modelid = ? AND "
			       "feature = ? ORDER BY id DESC LIMIT ? OFFSET ?", p, 2, skip, limit,
			       metric_from_row);
	} else {
		struct mlc_param p[] = { MLC_PSTR(id) };

		mlc_reply_page(r, "SELECT " METRIC_COLS " FROM drift_metrics WHERE modelid = ? "
			       "ORDER BY id DESC LIMIT ? OFFSET ?", p, 1, skip, limit, metric_from_row);
	}
}

/* GET /model/{id}/drift/summary: the latest result of each feature. */
void mlc_h_drift_summary(struct mlc_req *r)
{
	const char *id = mlc_param(r, "model_id");
	struct mlc_param p[] = { MLC_PSTR(id), MLC_PSTR(id) };
	long skip, limit;

	if (mlc_paging_or_422(r, MLC_NO_LIMIT, &skip, &limit) < 0 ||
	    mlc_model_owned_or_reply(r, id, "read the drift results of") < 0)
		return;
	mlc_reply_page(r, "SELECT " METRIC_COLS " FROM drift_metrics WHERE modelid = ? AND id IN "
		       "(SELECT MAX(id) FROM drift_metrics WHERE modelid = ? GROUP BY feature) "
		       "ORDER BY feature LIMIT ? OFFSET ?", p, 2, skip, limit, metric_from_row);
}
