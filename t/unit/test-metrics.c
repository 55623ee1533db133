/*
 * test-metrics.c - the shared counters (app/metrics.c): nothing is
 * recorded before the segment exists, counts from several processes add
 * up, a deployment id gets one slot however many processes meet it first,
 * ids beyond the cap go to "(other)", and label values are escaped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "metrics.h"
#include "tap.h"

static const struct mlc_route table[] = {
	{ "GET", "/health", NULL, 0, 0 },
	{ "POST", "/deployment/{deployment_id}/predict", NULL, 0, 0 },
};

static char *render(void)
{
	struct mlc_buf t = { 0 };

	mlc_metrics_render(&t, table, 2);
	return t.s ? t.s : strdup("");
}

/* The value of the series line that starts with prefix (labels
 * included), or -1. */
static long long value(const char *text, const char *prefix)
{
	const char *p = text;
	size_t n = strlen(prefix);

	while ((p = strstr(p, prefix))) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return atoll(p + n + 1);
		p += n;
	}
	return -1;
}

static int lines_with(const char *text, const char *needle)
{
	int n = 0;
	const char *p = text;

	while ((p = strstr(p, needle))) {
		n++;
		p += strlen(needle);
	}
	return n;
}

int main(void)
{
	struct mlc_buf t = { 0 };
	char *out, id[32];
	int i, k, status;
	pid_t kids[4];

	mlc_metrics_request(0, 200, 0.001);
	mlc_metrics_predict("d", 0, 0.1);
	out = render();
	is_str(out, "", "nothing is recorded or rendered before mlc_metrics_init");
	free(out);

	ok(mlc_metrics_init() == 0, "the segment is mapped");
	for (k = 0; k < 4; k++) {
		kids[k] = fork();
		if (kids[k] == 0) {
			for (i = 0; i < 1000; i++) {
				mlc_metrics_request(0, 200, 0.003);
				mlc_metrics_request(-1, 404, 0.2);
				snprintf(id, sizeof(id), "dep-%d", i % 50);
				mlc_metrics_predict(id, (i / 50) % 2, 0.02);
			}
			mlc_metrics_worker_restart(k % 2);
			_exit(0);
		}
	}
	for (k = 0; k < 4; k++)
		waitpid(kids[k], &status, 0);
	out = render();
	is_int(value(out, "mlc_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"}"),
	       4000, "4 processes x 1000 requests of one route add up");
	is_int(value(out, "mlc_http_requests_total{method=\"(any)\",route=\"(none)\",status=\"404\"}"),
	       4000, "requests no route matched are counted under route \"(none)\"");
	is_int(value(out, "mlc_http_request_duration_seconds_bucket{method=\"GET\",route=\"/health\","
			  "le=\"0.0025\"}"), -1, "buckets are the documented bounds only");
	is_int(value(out, "mlc_http_request_duration_seconds_bucket{method=\"GET\",route=\"/health\","
			  "le=\"0.005\"}"), 4000, "3 ms lands in the 5 ms bucket");
	is_int(value(out, "mlc_http_request_duration_seconds_bucket{method=\"GET\",route=\"/health\","
			  "le=\"0.001\"}"), -1, "no bucket below the first bound");
	is_int(value(out, "mlc_http_request_duration_seconds_bucket{method=\"(any)\",route=\"(none)\","
			  "le=\"0.1\"}"), 0, "buckets are cumulative: 0 below 200 ms");
	is_int(value(out, "mlc_http_request_duration_seconds_bucket{method=\"(any)\",route=\"(none)\","
			  "le=\"+Inf\"}"), 4000, "and all of them in +Inf");
	is_int(value(out, "mlc_http_request_duration_seconds_count{method=\"(any)\",route=\"(none)\"}"),
	       4000, "the count equals +Inf");
	ok(strstr(out, "mlc_http_request_duration_seconds_sum{method=\"GET\",route=\"/health\"} 12.000000\n")
	   != NULL, "the sum is in seconds (4000 x 3 ms)");
	is_int(lines_with(out, "mlc_predict_duration_seconds_count{"), 50,
	       "50 deployment ids met by 4 processes at once get 50 slots, none twice");
	is_int(value(out, "mlc_predict_duration_seconds_count{deployment=\"dep-7\"}"), 40,
	       "each deployment's predict calls add up (4 x 10)");
	is_int(value(out, "mlc_explain_duration_seconds_count{deployment=\"dep-7\"}"), 40,
	       "explain calls are counted apart");
	is_int(value(out, "mlc_worker_restarts_total{pool=\"fast\"}"), 2, "worker restarts by pool (fast)");
	is_int(value(out, "mlc_worker_restarts_total{pool=\"slow\"}"), 2, "worker restarts by pool (slow)");
	free(out);

	for (i = 0; i < MLC_METRICS_MAX_DEPLOYMENTS + 10; i++) {
		snprintf(id, sizeof(id), "cap-%d", i);
		mlc_metrics_predict(id, 0, 0.5);
	}
	mlc_metrics_predict("dep-7", 0, 0.5);
	out = render();
	is_int(lines_with(out, "mlc_predict_duration_seconds_count{"), MLC_METRICS_MAX_DEPLOYMENTS + 1,
	       "at most MLC_METRICS_MAX_DEPLOYMENTS ids, and \"(other)\"");
	is_int(value(out, "mlc_predict_duration_seconds_count{deployment=\"(other)\"}"), 60,
	       "the ids beyond the cap go to \"(other)\"");
	is_int(value(out, "mlc_predict_duration_seconds_count{deployment=\"dep-7\"}"), 41,
	       "an id seen before the cap was reached keeps its own series");
	free(out);

	mlc_metrics_db_error(MLC_METRICS_DB_LOST);
	mlc_metrics_db_reconnect();
	mlc_metrics_upload(1000, "model", 900);
	mlc_metrics_upload(50, NULL, 0);
	mlc_metrics_upload(0, "nonsense", 7);
	out = render();
	is_int(value(out, "mlc_db_errors_total{kind=\"connection_lost\"}"), 1, "database errors by kind");
	is_int(value(out, "mlc_db_reconnects_total"), 1, "reconnects");
	is_int(value(out, "mlc_upload_received_bytes_total"), 1050, "upload bytes received");
	is_int(value(out, "mlc_upload_stored_bytes_total{kind=\"model\"}"), 900, "bytes stored by kind");
	is_int(lines_with(out, "nonsense"), 0, "an unknown kind adds no series");
	ok(strstr(out, "# TYPE mlc_http_requests_total counter\n") != NULL, "families have a TYPE line");
	free(out);

	mlc_text_label(&t, "a\"b\\c\nd");
	is_str(t.s, "a\\\"b\\\\c\\nd", "label values escape \", \\ and newline");
	mlc_buf_release(&t);
	for (i = 0; i < 2000; i++)
		mlc_buf_appendf(&t, "%04d\n", i);
	is_int((long long)t.len, 10000, "the text buffer grows as needed");
	ok(t.s && !strncmp(t.s + 9995, "1999\n", 5), "and keeps what was written");
	mlc_buf_release(&t);
	return done_testing();
}
