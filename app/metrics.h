/*
 * metrics.h - the counters GET /metrics serves, in the Prometheus text
 * format.
 *
 * The counters live in one fixed-size shared memory segment that the
 * master maps (mmap MAP_SHARED|MAP_ANONYMOUS) before it forks any worker:
 * every worker adds to the same counters with atomic operations, and a
 * worker that dies and is replaced takes nothing with it.  The segment
 * ends with the master (a new master starts again from zero, which
 * Prometheus reads as a counter reset).  Before mlc_metrics_init, and in
 * processes that never call it (unit tests of other parts), every
 * recording call does nothing.
 *
 * Label values are bounded: routes are the rows of the route table (plus
 * one "(none)" row for requests no row matched), statuses 100..599, and
 * per-deployment latencies are kept for the first
 * MLC_METRICS_MAX_DEPLOYMENTS deployment ids seen; calls of any later one
 * are added to the deployment "(other)".
 *
 * What is read from the database and the spool at scrape time (deployments
 * and trainings by status, drift runs per model, the spool's queue) is
 * not kept here: see mlc_h_metrics (route-metrics.c).
 */
#ifndef MLC_METRICS_H
#define MLC_METRICS_H

#include <stddef.h>

#include "buf.h"
#include "router.h"

#define MLC_METRICS_MAX_ROUTES 64
#define MLC_METRICS_MAX_DEPLOYMENTS 256

enum mlc_metrics_db {
	MLC_METRICS_DB_CONNECT,		/* a connection could not be opened */
	MLC_METRICS_DB_LOST,		/* the server went away during a statement */
	MLC_METRICS_DB_DUPLICATE,	/* a unique key refused a row */
	MLC_METRICS_DB_OTHER,		/* any other error of a statement */
	MLC_METRICS_DB_CONFLICT,	/* rolled back: deadlock, lock wait, Galera certification */
	MLC_METRICS_DB_NOT_READY,	/* a Galera node outside the Primary Component */
	MLC_METRICS_DB_KINDS
};

/* Map the segment (the master, once, before forking).  -1 with errno. */
int mlc_metrics_init(void);

/* Monotonic seconds, for the durations passed below. */
double mlc_metrics_now(void);

/* One answered request: route is its row in the route table (-1 when no
 * row matched), status the HTTP status sent, seconds its time. */
void mlc_metrics_request(int route, int status, double seconds);

/* One predict call that reached deployment's runtime (explain: it asked
 * for an explanation), and its time in the gateway. */
void mlc_metrics_predict(const char *deployment, int explain, double seconds);

/* The master replaced a worker of the fast (slow 0) or slow pool. */
void mlc_metrics_worker_restart(int slow);

/* A worker of the fast (slow 0) or slow pool accepted a connection from
 * nginx. */
void mlc_metrics_connection(int slow);

void mlc_metrics_db_error(enum mlc_metrics_db kind);
/* A worker opened a database connection again after losing one. */
void mlc_metrics_db_reconnect(void);

/* An upload request read received body bytes; stored > 0 when it stored a
 * file of that many bytes (kind: model, data, code or env). */
void mlc_metrics_upload(long long received, const char *kind, long long stored);

/* Append v as a Prometheus label value: \, " and newline escaped. */
void mlc_text_label(struct mlc_buf *t, const char *v);
/* "# HELP" and "# TYPE" lines of one metric family. */
void mlc_metrics_family(struct mlc_buf *t, const char *name, const char *type, const char *help);

/* Append every counter of the segment (nothing before mlc_metrics_init)
 * in the Prometheus text format, the routes named by the table's rows. */
void mlc_metrics_render(struct mlc_buf *out, const struct mlc_route *routes, size_t nroutes);

#endif
