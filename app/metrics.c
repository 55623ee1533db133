/*
 * metrics.c - the shared counters (see metrics.h) and their text form; GET /metrics
 * itself, which adds what it reads from the database, is route-metrics.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <time.h>

#include "conf.h"
#include "metrics.h"

/* Upper bounds (seconds) of the latency buckets; one more for +Inf. */
static const double bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
				 60, 120 };
#define NBOUNDS (sizeof(bounds) / sizeof(bounds[0]))
#define NSTATUS 500	/* statuses 100..599 */

struct hist {
	uint64_t bucket[NBOUNDS + 1];	/* per bucket, not cumulative */
	uint64_t sum_us;
};

struct route_stats {
	uint64_t status[NSTATUS];
	struct hist latency;
};

enum { SLOT_FREE, SLOT_CLAIMED, SLOT_READY };

struct dep_stats {
	uint32_t state;		/* SLOT_*: id is set once state is SLOT_READY */
	char id[68];
	struct hist call[2];	/* predict, explain */
};

static const char *const upload_kinds[] = { "model", "data", "code", "env" };
#define NKINDS (sizeof(upload_kinds) / sizeof(upload_kinds[0]))

struct shm {
	uint64_t start_time;	/* Unix seconds, when the master mapped the segment */
	struct route_stats routes[MLC_METRICS_MAX_ROUTES + 1];	/* the last: no route */
	struct dep_stats deps[MLC_METRICS_MAX_DEPLOYMENTS + 1];	/* the last: "(other)" */
	uint64_t worker_restarts[2];
	uint64_t connections[2];
	uint64_t db_errors[MLC_METRICS_DB_KINDS];
	uint64_t db_reconnects;
	uint64_t upload_received;
	uint64_t upload_stored[NKINDS];
};

static struct shm *shm;

int mlc_metrics_init(void)
{
	void *p;

	if (shm)
		return 0;
	p = mmap(NULL, sizeof(struct shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		 -1, 0);
	if (p == MAP_FAILED)
		return -1;
	shm = p;	/* zero-filled by the kernel */
	shm->start_time = (uint64_t)time(NULL);
	return 0;
}

double mlc_metrics_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void add(uint64_t *c, uint64_t n)
{
	__atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

static uint64_t get(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

static void observe(struct hist *h, double seconds)
{
	size_t i = 0;

	if (!(seconds >= 0))	/* NaN too */
		seconds = 0;
	while (i < NBOUNDS && seconds > bounds[i])
		i++;
	add(&h->bucket[i], 1);
	add(&h->sum_us, (uint64_t)(seconds * 1e6 + 0.5));
}

void mlc_metrics_request(int route, int status, double seconds)
{
	struct route_stats *s;

	if (!shm)
		return;
	s = &shm->routes[route >= 0 && route < MLC_METRICS_MAX_ROUTES ? route
			 : MLC_METRICS_MAX_ROUTES];
	if (status >= 100 && status < 100 + NSTATUS)
		add(&s->status[status - 100], 1);
	observe(&s->latency, seconds);
}

/*
 * The slot of a deployment id.  Slots are taken in order and never given
 * back, so two workers meeting the same new id both stop at the first
 * free slot: one claims it, the other waits the few instructions until
 * its id is written, finds it and uses it.  A worker killed in between
 * leaves its slot claimed: after a bounded wait it is passed over.
 */
static struct dep_stats *dep_slot(const char *id)
{
	size_t len = strlen(id), i;
	struct dep_stats *other = &shm->deps[MLC_METRICS_MAX_DEPLOYMENTS];

	if (len == 0 || len >= sizeof(other->id))
		return other;
	for (i = 0; i < MLC_METRICS_MAX_DEPLOYMENTS; i++) {
		struct dep_stats *s = &shm->deps[i];
		uint32_t st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
		int spins;

		if (st == SLOT_FREE) {
			uint32_t want = SLOT_FREE;

			if (__atomic_compare_exchange_n(&s->state, &want, SLOT_CLAIMED, 0,
							__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
				memcpy(s->id, id, len + 1);
				__atomic_store_n(&s->state, SLOT_READY, __ATOMIC_RELEASE);
				return s;
			}
			st = want;
		}
		for (spins = 0; st == SLOT_CLAIMED && spins < 10000; spins++) {
			sched_yield();
			st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
		}
		if (st == SLOT_READY && !strcmp(s->id, id))
			return s;
	}
	return other;
}

void mlc_metrics_predict(const char *deployment, int explain, double seconds)
{
	if (!shm || !deployment)
		return;
	observe(&dep_slot(deployment)->call[explain ? 1 : 0], seconds);
}

void mlc_metrics_worker_restart(int slow)
{
	if (shm)
		add(&shm->worker_restarts[slow ? 1 : 0], 1);
}

void mlc_metrics_connection(int slow)
{
	if (shm)
		add(&shm->connections[slow ? 1 : 0], 1);
}

void mlc_metrics_db_error(enum mlc_metrics_db kind)
{
	if (shm && kind < MLC_METRICS_DB_KINDS)
		add(&shm->db_errors[kind], 1);
}

void mlc_metrics_db_reconnect(void)
{
	if (shm)
		add(&shm->db_reconnects, 1);
}

void mlc_metrics_upload(long long received, const char *kind, long long stored)
{
	size_t i;

	if (!shm)
		return;
	if (received > 0)
		add(&shm->upload_received, (uint64_t)received);
	for (i = 0; kind && stored > 0 && i < NKINDS; i++)
		if (!strcmp(kind, upload_kinds[i]))
			add(&shm->upload_stored[i], (uint64_t)stored);
}

/* ---- text ---- */

void mlc_text_label(struct mlc_buf *t, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			mlc_buf_appendf(t, "\\%c", *v);
		else if (*v == '\n')
			mlc_buf_appendf(t, "\\n");
		else
			mlc_buf_append(t, v, 1);
	}
}

void mlc_metrics_family(struct mlc_buf *t, const char *name, const char *type, const char *help)
{
	mlc_buf_appendf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int hist_empty(const struct hist *h)
{
	size_t i;

	for (i = 0; i <= NBOUNDS; i++)
		if (get(&h->bucket[i]))
			return 0;
	return 1;
}

/* The series of one histogram; labels is "name=\"value\",..." (escaped). */
static void put_hist(struct mlc_buf *t, const char *name, const char *labels,
		     const struct hist *h)
{
	uint64_t total = 0;
	size_t i;

	for (i = 0; i <= NBOUNDS; i++) {
		total += get(&h->bucket[i]);
		if (i < NBOUNDS)
			mlc_buf_appendf(t, "%s_bucket{%s,le=\"%g\"} %llu\n", name, labels, bounds[i],
					(unsigned long long)total);
		else
			mlc_buf_appendf(t, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels,
					(unsigned long long)total);
	}
	/* The count is the buckets' total, so that the two always agree
	 * even while other workers add to them. */
	mlc_buf_appendf(t, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, labels,
			(double)get(&h->sum_us) / 1e6, name, labels, (unsigned long long)total);
}

static void route_labels(struct mlc_buf *l, const struct mlc_route *routes, size_t nroutes,
			 size_t i)
{
	mlc_buf_reset(l);
	mlc_buf_appendf(l, "method=\"");
	mlc_text_label(l, i < nroutes ? routes[i].method : "(any)");
	mlc_buf_appendf(l, "\",route=\"");
	mlc_text_label(l, i < nroutes ? routes[i].pattern : "(none)");
	mlc_buf_appendf(l, "\"");
}

void mlc_metrics_render(struct mlc_buf *t, const struct mlc_route *routes, size_t nroutes)
{
	static const char *const db_kinds[] = { "connect", "connection_lost", "duplicate", "other",
						     "conflict", "not_ready" };
	struct mlc_buf l = { 0 };
	size_t i, j, n = nroutes < MLC_METRICS_MAX_ROUTES ? nroutes : MLC_METRICS_MAX_ROUTES;

	if (!shm)
		return;
	mlc_metrics_family(t, "mlc_api_start_time_seconds", "gauge",
	       "When the mlc-api master started (Unix time); the counters below count from then.");
	mlc_buf_appendf(t, "mlc_api_start_time_seconds %llu\n", (unsigned long long)shm->start_time);

	mlc_metrics_family(t, "mlc_http_requests_total", "counter",
	       "Requests answered by the API workers, by route template and status. "
	       "route=\"(none)\": no route matched (404, 405, 307, CORS preflights).");
	for (i = 0; i <= MLC_METRICS_MAX_ROUTES; i++) {
		if (i >= n && i != MLC_METRICS_MAX_ROUTES)
			continue;
		route_labels(&l, routes, n, i);
		for (j = 0; j < NSTATUS; j++) {
			uint64_t c = get(&shm->routes[i].status[j]);

			if (c)
				mlc_buf_appendf(t, "mlc_http_requests_total{%s,status=\"%zu\"} %llu\n",
						l.s, j + 100, (unsigned long long)c);
		}
	}
	mlc_metrics_family(t, "mlc_http_request_duration_seconds", "histogram",
	       "Time from the start of routing to the end of the reply in the worker, by route "
	       "template.");
	for (i = 0; i <= MLC_METRICS_MAX_ROUTES; i++) {
		if ((i >= n && i != MLC_METRICS_MAX_ROUTES) || hist_empty(&shm->routes[i].latency))
			continue;
		route_labels(&l, routes, n, i);
		put_hist(t, "mlc_http_request_duration_seconds", l.s, &shm->routes[i].latency);
	}
	for (j = 0; j < 2; j++) {
		const char *name = j ? "mlc_explain_duration_seconds" : "mlc_predict_duration_seconds";

		mlc_metrics_family(t, name, "histogram", j ?
		       "Predict calls with explain true that reached the deployment's runtime: their "
		       "time in the gateway, per deployment (\"(other)\" beyond the first 256 ids)." :
		       "Predict calls without explain that reached the deployment's runtime: their "
		       "time in the gateway, per deployment (\"(other)\" beyond the first 256 ids).");
		for (i = 0; i <= MLC_METRICS_MAX_DEPLOYMENTS; i++) {
			const struct dep_stats *s = &shm->deps[i];

			if (i < MLC_METRICS_MAX_DEPLOYMENTS &&
			    __atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != SLOT_READY)
				continue;
			if (hist_empty(&s->call[j]))
				continue;
			mlc_buf_reset(&l);
			mlc_buf_appendf(&l, "deployment=\"");
			mlc_text_label(&l, i < MLC_METRICS_MAX_DEPLOYMENTS ? s->id : "(other)");
			mlc_buf_appendf(&l, "\"");
			put_hist(t, name, l.s, &s->call[j]);
		}
	}
	mlc_metrics_family(t, "mlc_worker_restarts_total", "counter",
	       "API workers that died and were replaced by the master, by pool.");
	mlc_buf_appendf(t, "mlc_worker_restarts_total{pool=\"fast\"} %llu\n"
			"mlc_worker_restarts_total{pool=\"slow\"} %llu\n",
			(unsigned long long)get(&shm->worker_restarts[0]),
			(unsigned long long)get(&shm->worker_restarts[1]));
	mlc_metrics_family(t, "mlc_fastcgi_connections_total", "counter",
	       "Connections from nginx the API workers accepted, by pool (with kept-alive "
	       "connections, far fewer than requests).");
	mlc_buf_appendf(t, "mlc_fastcgi_connections_total{pool=\"fast\"} %llu\n"
			"mlc_fastcgi_connections_total{pool=\"slow\"} %llu\n",
			(unsigned long long)get(&shm->connections[0]),
			(unsigned long long)get(&shm->connections[1]));
	mlc_metrics_family(t, "mlc_db_errors_total", "counter",
	       "Database errors the API workers met, by kind.");
	for (i = 0; i < MLC_METRICS_DB_KINDS; i++)
		mlc_buf_appendf(t, "mlc_db_errors_total{kind=\"%s\"} %llu\n", db_kinds[i],
				(unsigned long long)get(&shm->db_errors[i]));
	mlc_metrics_family(t, "mlc_db_reconnects_total", "counter",
	       "Database connections opened again by a worker that had lost its connection.");
	mlc_buf_appendf(t, "mlc_db_reconnects_total %llu\n",
			(unsigned long long)get(&shm->db_reconnects));
	mlc_metrics_family(t, "mlc_upload_received_bytes_total", "counter",
	       "Body bytes read by POST /model/{model_id}/upload, whatever the outcome.");
	mlc_buf_appendf(t, "mlc_upload_received_bytes_total %llu\n",
			(unsigned long long)get(&shm->upload_received));
	mlc_metrics_family(t, "mlc_upload_stored_bytes_total", "counter",
	       "Bytes of the files uploads stored, by file kind.");
	for (i = 0; i < NKINDS; i++)
		mlc_buf_appendf(t, "mlc_upload_stored_bytes_total{kind=\"%s\"} %llu\n",
				upload_kinds[i], (unsigned long long)get(&shm->upload_stored[i]));
	mlc_buf_release(&l);
}
