/*
 * route-metrics.c - GET /metrics: the shared counters (metrics.c) and, read at
 * scrape time, the database's rows by state and the spool's queues.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "metrics.h"
#include "routes.h"

struct status_count {
	const char *const *names;	/* the statuses always listed, NULL-terminated */
	long long counts[8];
	struct mlc_buf *extra;		/* series of statuses outside names */
	const char *metric;
};

static int count_row(void *ctx, char **cols, const unsigned long *lens, unsigned n)
{
	struct status_count *s = ctx;
	size_t i;

	for (i = 0; s->names[i]; i++) {
		if (!strcmp(cols[0], s->names[i])) {
			s->counts[i] = atoll(cols[1]);
			return 0;
		}
	}
	mlc_buf_appendf(s->extra, "%s{status=\"", s->metric);
	mlc_text_label(s->extra, cols[0]);
	mlc_buf_appendf(s->extra, "\"} %lld\n", atoll(cols[1]));
	return 0;
}

/* One gauge family of counts by status from "SELECT status, COUNT(*) ...
 * GROUP BY status"; every status of names is listed, 0 when absent. */
static int by_status(struct mlc_req *r, struct mlc_buf *t, const char *metric, const char *help,
		     const char *sql, const char *const *names)
{
	struct mlc_buf extra = { 0 };
	struct status_count s = { names, { 0 }, &extra, metric };
	struct mlc_err err = { 0, "" };
	size_t i;

	if (mlc_db_exec(r->db, sql, NULL, 0, count_row, &s, &err) < 0) {
		mlc_buf_release(&extra);
		return -1;
	}
	mlc_metrics_family(t, metric, "gauge", help);
	for (i = 0; names[i]; i++)
		mlc_buf_appendf(t, "%s{status=\"%s\"} %lld\n", metric, names[i], s.counts[i]);
	if (extra.len)
		mlc_buf_appendf(t, "%s", extra.s);
	mlc_buf_release(&extra);
	return 0;
}

struct rows_out {
	struct mlc_buf *t;
	const char *metric;
	int with_status;
};

static int model_row(void *ctx, char **cols, const unsigned long *lens, unsigned n)
{
	struct rows_out *o = ctx;

	mlc_buf_appendf(o->t, "%s{model=\"", o->metric);
	mlc_text_label(o->t, cols[0]);
	if (o->with_status) {
		mlc_buf_appendf(o->t, "\",status=\"");
		mlc_text_label(o->t, cols[1]);
	}
	mlc_buf_appendf(o->t, "\"} %lld\n", atoll(cols[o->with_status ? 2 : 1]));
	return 0;
}

static int per_model(struct mlc_req *r, struct mlc_buf *t, const char *metric, const char *help,
		     const char *sql, int with_status)
{
	struct mlc_buf rows = { 0 };
	struct rows_out o = { &rows, metric, with_status };
	struct mlc_err err = { 0, "" };

	if (mlc_db_exec(r->db, sql, NULL, 0, model_row, &o, &err) < 0) {
		mlc_buf_release(&rows);
		return -1;
	}
	mlc_metrics_family(t, metric, "gauge", help);
	if (rows.len)
		mlc_buf_appendf(t, "%s", rows.s);
	mlc_buf_release(&rows);
	return 0;
}

/* Regular entries of <MLC_VAR>/spool/<sub>, or -1 when it cannot be read
 * (spool/cur/ is root's alone in an installation). */
static long spool_count(const char *sub)
{
	char path[4096];
	struct dirent *e;
	long n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/spool/%s", mlc_config_get("MLC_VAR", "var"), sub);
	if (!(d = opendir(path)))
		return errno == ENOENT ? 0 : -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

void mlc_h_metrics(struct mlc_req *r)
{
	static const char *const dep_status[] = { "waiting", "building", "deployed", "failed",
						  "stopping", "stopped", NULL };
	static const char *const train_status[] = { "waiting", "running", "completed", "failed",
						    NULL };
	static const char *const spool_dirs[] = { "new", "cur" };
	struct mlc_buf t = { 0 };
	const struct mlc_route *routes;
	size_t nroutes, i;
	int db_ok;

	routes = mlc_routes(&nroutes);
	mlc_metrics_render(&t, routes, nroutes);
	/* Read at scrape time: one GROUP BY each, on indexed columns except
	 * for drift_metrics, whose scan is bounded by the runs' features. */
	db_ok = by_status(r, &t, "mlc_deployments", "Deployments by status (database rows).",
			  "SELECT status, COUNT(*) FROM deployments GROUP BY status", dep_status) == 0 &&
		by_status(r, &t, "mlc_trainings", "Trainings by status (database rows).",
			  "SELECT status, COUNT(*) FROM trainings GROUP BY status", train_status) == 0 &&
		per_model(r, &t, "mlc_drift_runs", "Drift runs per model and status (database rows).",
			  "SELECT modelid, status, COUNT(*) FROM drift_runs GROUP BY modelid, status",
			  1) == 0 &&
		per_model(r, &t, "mlc_drift_detected_runs",
			  "Drift runs per model in which at least one feature drifted.",
			  "SELECT modelid, COUNT(DISTINCT run_id) FROM drift_metrics "
			  "WHERE drift_detected = 1 GROUP BY modelid", 0) == 0;
	mlc_metrics_family(&t, "mlc_metrics_database_up", "gauge",
	       "1 when the database answered this scrape's queries; 0 leaves out the families "
	       "read from it.");
	mlc_buf_appendf(&t, "mlc_metrics_database_up %d\n", db_ok);
	mlc_metrics_family(&t, "mlc_spool_bundles", "gauge",
	       "Job bundles waiting for the spooler (queue=\"new\") and claimed by it but not "
	       "finished (queue=\"cur\", left out when this process may not read spool/cur/).");
	for (i = 0; i < sizeof(spool_dirs) / sizeof(spool_dirs[0]); i++) {
		long n = spool_count(spool_dirs[i]);

		if (n >= 0)
			mlc_buf_appendf(&t, "mlc_spool_bundles{queue=\"%s\"} %ld\n", spool_dirs[i], n);
	}
	mlc_reply_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", t.s ? t.s : "", t.len);
	mlc_buf_release(&t);
}
