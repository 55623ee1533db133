/*
 * route-predict.c - POST /deployment/{deployment_id}/predict: the gateway to a
 * deployment's model runtime.
 *
 * The worker checks the rows against the model's featurelist as the
 * deployment froze it when it was created (deployments.features), forwards
 * them as one 2-D list to the runtime over its unix socket or, for a
 * remote backend, its http(s) URL (libcurl, one keep-alive handle per
 * worker), records the call as an inference operation, and returns the
 * runtime's answer with the operation's id.
 * For deployments with inference_data 1 the rows may instead come from a
 * CSV at an http(s) URL, which the worker fetches (the runtime has no
 * network) under size, time and address limits.
 *
 * Predict runs in the slow pool (see main.c).  At most
 * MLC_PREDICT_MAX_PER_DEPLOYMENT calls of one deployment run at once
 * (slots, pool.h); a call beyond them waits a quarter of a second for one
 * and is then refused with 429, so one slow model or data server cannot
 * hold every slow worker.  A runtime that
 * does not answer within MLC_PREDICT_TIMEOUT gets 504, and the call is
 * recorded as a failed operation.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>

#include "conf.h"
#include "csvcheck.h"
#include "featurelist.h"
#include "jsonutil.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "routes.h"
#include "runtime_answer.h"
#include "stamp.h"
#include "validate.h"

static const struct mlc_field predict_schema[] = {
	{ .name = "data", .type = MLC_V_ANY, .flags = MLC_F_NULLABLE },
	{ .name = "data_link", .type = MLC_V_STR, .flags = MLC_F_NULLABLE, .max_len = 2048 },
	{ .name = "explain", .type = MLC_V_BOOL, .flags = MLC_F_NULLABLE },
	{ .name = "ownerid", .type = MLC_V_STR, .flags = MLC_F_NULLABLE, .max_len = 255 },
	{ .name = NULL }
};

/*
 * The model's input features (featurelist.h, the one rule): names holds
 * their names (null where an input has none); text marks the features
 * that also take strings: type "cat", and any type other than "cont" (the
 * featurelist does not say such a feature is numeric, so the model
 * decides).  named says whether the names can key rows; when not, why
 * says what keeps them from it.
 */
struct features {
	json_object *names;
	unsigned char text[MLC_FEATURES_MAX];
	size_t n;
	int named;
	char why[320];
};

/* The deployment a call goes to, and its input features. */
struct target {
	int found;
	char status[16];
	char reason[512];
	char endpoint[600];
	char modelid[65];
	char ownerid[256];
	int inference_data;
	struct features f;	/* holds a reference to f.names */
};

static void features_of_text(const char *text, size_t len, struct features *f);

static void copy_col(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
}

static int target_row(void *ctx, char **c, const unsigned long *l, unsigned n)
{
	struct target *t = ctx;

	t->found = 1;
	copy_col(t->status, sizeof(t->status), c[0]);
	copy_col(t->reason, sizeof(t->reason), c[1]);
	copy_col(t->endpoint, sizeof(t->endpoint), c[2]);
	copy_col(t->modelid, sizeof(t->modelid), c[3]);
	copy_col(t->ownerid, sizeof(t->ownerid), c[4]);
	t->inference_data = c[5] ? atoi(c[5]) : 0;
	features_of_text(c[6], c[6] ? l[6] : 0, &t->f);
	return 1;
}

/* The name of input feature j, or NULL when it has none. */
static const char *feature_name(const struct features *f, size_t j)
{
	json_object *name = j < f->n ? json_object_array_get_idx(f->names, j) : NULL;

	return name ? json_object_get_string(name) : NULL;
}

/* Fill f from the featurelist the deployment froze (NULL when none). */
static void features_of(json_object *featurelist, struct features *f)
{
	struct mlc_features in;
	size_t j;

	mlc_features_of(featurelist, &in);
	f->names = json_object_get(in.names);
	f->n = in.n;
	f->named = in.named;
	snprintf(f->why, sizeof(f->why), "%s", in.why);
	for (j = 0; j < f->n; j++) {
		json_object *type = json_object_array_get_idx(in.types, j);

		f->text[j] = type && strcmp(json_object_get_string(type), "cont");
	}
	mlc_features_release(&in);
}

/*
 * A deployment's featurelist is text frozen when it was created
 * (deployments.features), read with the row on every call.  The worker
 * keeps the features of the last few texts it parsed, keyed by the text
 * itself: a call whose row has the same text (the same deployment, as a
 * rule) takes them without parsing the JSON and walking it again.  Only
 * the parsing is saved; the row is still read for every call.
 */
#define KEPT_FEATURELISTS 8

static struct kept_features {
	char *text;			/* NULL: a free entry */
	size_t len;
	unsigned long long used;	/* clock of the last use */
	struct features f;
} kept_features[KEPT_FEATURELISTS];
static unsigned long long kept_clock;

/* f from featurelist text (len bytes, NUL-terminated; NULL: none), with
 * its own reference to f->names. */
static void features_of_text(const char *text, size_t len, struct features *f)
{
	struct kept_features *e = NULL, *oldest = &kept_features[0];
	json_object *featurelist;
	size_t i;

	if (!text) {
		features_of(NULL, f);
		return;
	}
	for (i = 0; i < KEPT_FEATURELISTS && !e; i++) {
		struct kept_features *k = &kept_features[i];

		if (k->text && k->len == len && !memcmp(k->text, text, len))
			e = k;
		else if (k->used < oldest->used)
			oldest = k;
	}
	if (!e) {
		e = oldest;
		free(e->text);
		json_object_put(e->f.names);
		featurelist = json_tokener_parse(text);
		features_of(featurelist, &e->f);
		json_object_put(featurelist);
		e->text = mlc_xmalloc(len + 1);
		memcpy(e->text, text, len + 1);
		e->len = len;
	}
	e->used = ++kept_clock;
	*f = e->f;
	json_object_get(f->names);
}

void mlc_predict_cache_release(void)
{
	size_t i;

	for (i = 0; i < KEPT_FEATURELISTS; i++) {
		free(kept_features[i].text);
		json_object_put(kept_features[i].f.names);
	}
	memset(kept_features, 0, sizeof(kept_features));
	kept_clock = 0;
}

/* ---- rows ---- */

/* A 422 entry at ["body", "data", row?, feature?]: positions stay
 * integers in loc, as pydantic writes them. */
static void row_error(json_object *errors, int batch, size_t row, const char *col,
		      const char *msg, const char *type)
{
	json_object *e = json_object_new_object(), *loc = json_object_new_array();

	json_object_array_add(loc, json_object_new_string("body"));
	json_object_array_add(loc, json_object_new_string("data"));
	if (batch)
		json_object_array_add(loc, json_object_new_int64((int64_t)row));
	if (col)
		json_object_array_add(loc, json_object_new_string(col));
	json_object_object_add(e, "loc", loc);
	json_object_object_add(e, "msg", json_object_new_string(msg));
	json_object_object_add(e, "type", json_object_new_string(type));
	json_object_array_add(errors, e);
}

static int is_number(json_object *v)
{
	return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
}

/* Check one value of feature j; appends an error and returns -1 if bad. */
static int check_value(json_object *v, const struct features *f, size_t j, size_t row,
		       int batch, const char *fname, json_object *errors)
{
	int text = f->n && f->text[j];
	char msg[300];

	if (is_number(v) || (text && json_object_is_type(v, json_type_string)))
		return 0;
	if (fname)
		snprintf(msg, sizeof(msg), "feature '%s' must be a number%s", fname,
			 text ? " or a string" : "");
	else
		snprintf(msg, sizeof(msg), "value %zu must be a number", j);
	row_error(errors, batch, row, fname, msg, "type_error.float");
	return -1;
}

static json_object *row_from_list(json_object *in, const struct features *f, size_t row,
				  int batch, size_t width, json_object *errors)
{
	size_t j, n = json_object_array_length(in);
	char msg[300];
	int bad = 0;

	if (width && n != width) {
		snprintf(msg, sizeof(msg), "row has %zu values; the model takes %zu features", n, width);
		row_error(errors, batch, row, NULL, msg, "value_error.row_length");
		return NULL;
	}
	for (j = 0; j < n; j++) {
		const char *fname = feature_name(f, j);

		bad |= check_value(json_object_array_get_idx(in, j), f, j, row, batch, fname, errors);
	}
	return bad ? NULL : json_object_get(in);
}

static json_object *row_from_object(json_object *in, const struct features *f, size_t row,
				    int batch, json_object *errors)
{
	json_object *out = json_object_new_array(), *v;
	char msg[512];
	size_t j;
	int bad = 0;

	if (!f->named) {
		snprintf(msg, sizeof(msg), "rows keyed by feature name need the model's input "
			 "features, but %s; send rows as lists in feature order", f->why);
		row_error(errors, batch, row, NULL, msg, "value_error.row_shape");
		json_object_put(out);
		return NULL;
	}
	for (j = 0; j < f->n; j++) {
		const char *name = feature_name(f, j);

		if (!json_object_object_get_ex(in, name, &v)) {
			snprintf(msg, sizeof(msg), "feature '%s' is missing", name);
			row_error(errors, batch, row, name, msg, "value_error.missing");
			bad = 1;
			continue;
		}
		bad |= check_value(v, f, j, row, batch, name, errors);
		json_object_array_add(out, json_object_get(v));
	}
	json_object_object_foreach(in, key, val) {
		int known = 0;

		(void)val;
		for (j = 0; j < f->n && !known; j++)
			known = !strcmp(key, feature_name(f, j));
		if (!known) {
			snprintf(msg, sizeof(msg), "unknown feature '%.200s'", key);
			row_error(errors, batch, row, key, msg, "value_error.extra");
			bad = 1;
		}
	}
	if (bad) {
		json_object_put(out);
		return NULL;
	}
	return out;
}

/*
 * data (one row, or a list of rows; a row is a list in feature order or
 * an object keyed by feature name) as a 2-D list in feature order, or
 * NULL after appending errors.  *batch says which form was sent.
 */
static json_object *normalise_rows(json_object *data, const struct features *f, int *batch,
				   json_object *errors)
{
	size_t i, n, width, max = (size_t)mlc_config_long("MLC_PREDICT_MAX_ROWS", 10000);
	json_object *rows, *first, *row, *out;
	char msg[120];

	*batch = json_object_is_type(data, json_type_array) && json_object_array_length(data) &&
		 (json_object_is_type(first = json_object_array_get_idx(data, 0), json_type_array) ||
		  json_object_is_type(first, json_type_object));
	if (!json_object_is_type(data, json_type_array) && !json_object_is_type(data, json_type_object)) {
		row_error(errors, 0, 0, NULL, "data must be a row (a list of values or an object "
			  "keyed by feature name) or a list of rows", "type_error.list");
		return NULL;
	}
	rows = *batch ? data : NULL;
	n = *batch ? json_object_array_length(data) : 1;
	if (!*batch && json_object_is_type(data, json_type_array) && !json_object_array_length(data)) {
		row_error(errors, 0, 0, NULL, "data has no values", "value_error.empty");
		return NULL;
	}
	if (n > max) {
		snprintf(msg, sizeof(msg), "a batch may have at most %zu rows", max);
		row_error(errors, 0, 0, NULL, msg, "value_error.list.max_items");
		return NULL;
	}
	out = json_object_new_array();
	width = f->n;
	for (i = 0; i < n; i++) {
		json_object *in = rows ? json_object_array_get_idx(rows, i) : data;

		if (json_object_is_type(in, json_type_array)) {
			if (!width)
				width = json_object_array_length(in);
			row = row_from_list(in, f, i, *batch, width, errors);
		} else if (json_object_is_type(in, json_type_object)) {
			row = row_from_object(in, f, i, *batch, errors);
		} else {
			row_error(errors, *batch, i, NULL, "row must be a list of values or an object",
				  "type_error.list");
			row = NULL;
		}
		if (row)
			json_object_array_add(out, row);
	}
	if (json_object_array_length(errors)) {
		json_object_put(out);
		return NULL;
	}
	return out;
}

/* ---- HTTP with libcurl ---- */

struct sink {
	char *buf;
	size_t len, cap, max;
	int overflow;
};

static size_t sink_write(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct sink *s = ctx;
	size_t n = size * nmemb;

	if (s->len + n > s->max) {
		s->overflow = 1;
		return 0;	/* makes libcurl stop with CURLE_WRITE_ERROR */
	}
	if (s->len + n + 1 > s->cap) {
		s->cap = (s->len + n + 1) * 2;
		if (s->cap > s->max + 1)
			s->cap = s->max + 1;
		s->buf = mlc_xrealloc(s->buf, s->cap);
	}
	memcpy(s->buf + s->len, data, n);
	s->len += n;
	s->buf[s->len] = '\0';
	return n;
}

/* Why a call to the runtime failed: the status to answer and its detail. */
struct call_failure {
	int code;		/* 503: the runtime never got the call; 502, 504: it did */
	char detail[768];
};

#define FAIL(f, status, ...) \
	((f)->code = (status), snprintf((f)->detail, sizeof((f)->detail), __VA_ARGS__), \
	 mlc_utf8_trim((f)->detail))

/*
 * The most bytes of a runtime's answer the worker reads and parses.  The
 * parsed answer takes 20 to 50 times its size in memory, hence a modest
 * default; a data link's answer also carries the rows read from the CSV
 * (an empty cell "," comes back as "null,"), so it may be larger by eight
 * times the CSV's size.
 */
static size_t answer_limit(size_t csv_bytes)
{
	long max = mlc_config_long("MLC_PREDICT_MAX_REPLY", 16L << 20);

	return (size_t)(max > 0 ? max : 16L << 20) + 8 * csv_bytes;
}

/*
 * The request body, handed to libcurl by a read callback.  libcurl keeps
 * the worker's connection to a runtime alive across requests (one handle
 * per worker; connections idle longer than KEEP_IDLE_S are closed, before
 * the runtime's own 120 s), and checks a kept connection before reusing
 * it: one the runtime closed (restarted, or idle) is replaced by a new
 * connection.  If a kept connection dies under a request anyway, libcurl
 * sends it again on a new one, rewinding the body first; the rewind is
 * refused once any of the body was handed over, since the runtime may
 * then have had the request whole and run the model: that call fails
 * (502) instead of running twice.  A request none of whose body was
 * handed over was never run and is sent again.  On a unix socket the new
 * connection itself is refused (open_runtime) once the body was handed
 * over: the runtime is typically gone, and the call must not be taken
 * for one it never got (503).
 */
#define KEEP_IDLE_S 60L

struct body_src {
	const char *data;
	size_t len, off;	/* off: bytes handed to libcurl so far */
	int resend_refused;
};

static size_t body_read(char *buf, size_t size, size_t nitems, void *ctx)
{
	struct body_src *b = ctx;
	size_t n = size * nitems;

	if (n > b->len - b->off)
		n = b->len - b->off;
	memcpy(buf, b->data + b->off, n);
	b->off += n;
	return n;
}

static int body_seek(void *ctx, curl_off_t offset, int origin)
{
	struct body_src *b = ctx;

	if (origin != SEEK_SET || offset != 0 || b->off) {
		b->resend_refused = 1;
		return CURL_SEEKFUNC_FAIL;
	}
	return CURL_SEEKFUNC_OK;
}

/*
 * The runtime socket is $MLC_VAR/deployments/<id>/runtime.sock, in a
 * directory the runtime user may write: code running as that user could
 * put a symlink there, pointing the API's workers at another deployment's
 * runtime or another service's socket.  So the path must be a socket, not
 * a symlink, and a new connection is used only when its listening end is
 * bound to that very path (getpeername, before anything is sent), which
 * no swap after the check can fake.
 */
struct runtime_conn {
	const char *path;
	int fd;			/* the socket opened for this request, -1 when reused */
	int refused;		/* connected, but to a socket bound elsewhere */
	struct body_src *src;	/* the request's body */
};

static int runtime_socket_ok(const char *path)
{
	struct stat st;

	return lstat(path, &st) < 0 || S_ISSOCK(st.st_mode);	/* absent: connect says so */
}

static curl_socket_t open_runtime(void *ctx, curlsocktype purpose, struct curl_sockaddr *sa)
{
	struct runtime_conn *rc = ctx;

	if (sa->family != AF_UNIX)
		return CURL_SOCKET_BAD;
	if (rc->src->off) {
		/* A kept connection died under the request: not again. */
		rc->src->resend_refused = 1;
		return CURL_SOCKET_BAD;
	}
	rc->fd = socket(AF_UNIX, sa->socktype | SOCK_CLOEXEC, sa->protocol);
	return rc->fd < 0 ? CURL_SOCKET_BAD : rc->fd;
}

/* Connected (or reusing a connection checked when it was made), about to
 * send: the listening end of a new connection must be bound to the path. */
static int check_runtime_peer(void *ctx, char *ip, char *local_ip, int port, int local_port)
{
	struct runtime_conn *rc = ctx;
	struct sockaddr_un peer;
	socklen_t len = sizeof(peer);

	if (rc->fd < 0)
		return CURL_PREREQFUNC_OK;
	memset(&peer, 0, sizeof(peer));
	if (getpeername(rc->fd, (struct sockaddr *)&peer, &len) < 0 ||
	    len <= offsetof(struct sockaddr_un, sun_path) ||
	    strlen(rc->path) >= sizeof(peer.sun_path) ||
	    strncmp(peer.sun_path, rc->path, sizeof(peer.sun_path))) {
		rc->refused = 1;
		return CURL_PREREQFUNC_ABORT;
	}
	rc->fd = -1;
	return CURL_PREREQFUNC_OK;
}

/*
 * POST body to the runtime's /predict on its unix socket.  Returns the
 * HTTP status with the answer in *out (caller frees), or -1 with f saying
 * why there is none.
 */
static long call_runtime(struct mlc_req *r, const char *dep, const char *endpoint,
			 const char *body, struct sink *out, struct call_failure *f)
{
	long timeout = mlc_config_long("MLC_PREDICT_TIMEOUT", 30), status = 0;
	struct curl_slist *hdrs = NULL;
	struct body_src src = { body, strlen(body), 0, 0 };
	struct runtime_conn conn = { endpoint + 5, -1, 0, &src };	/* for unix: endpoints */
	CURL *c = r->curl;
	CURLcode rc;

	/* A remote runtime (kubernetes, mlsysops) answers at http(s)://. */
	int remote = !strncmp(endpoint, "http://", 7) || !strncmp(endpoint, "https://", 8);
	char url[640];

	if (strncmp(endpoint, "unix:", 5) && !remote) {
		FAIL(f, 503, "deployment '%s' has no runtime endpoint yet", dep);
		return -1;
	}
	snprintf(url, sizeof(url), "%s/predict", remote ? endpoint : "http://runtime");
	if (!remote && !runtime_socket_ok(conn.path)) {
		/* Never sent: a refusal, not a failed call. */
		mlc_log("error", r->request_id, "deployment %s: %s is not a socket (a symlink?); "
			"refusing to connect", dep, conn.path);
		FAIL(f, 503, "deployment '%s': its runtime socket is not a socket; refusing to "
		     "connect", dep);
		return -1;
	}
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (r->request_id) {
		/* The runtime names the request in the lines it logs. */
		char id[96];

		snprintf(id, sizeof(id), "X-Request-Id: %s", r->request_id);
		hdrs = curl_slist_append(hdrs, id);
	}
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, remote ? NULL : endpoint + 5);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, body_read);
	curl_easy_setopt(c, CURLOPT_READDATA, &src);
	curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, body_seek);
	curl_easy_setopt(c, CURLOPT_SEEKDATA, &src);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)src.len);
	curl_easy_setopt(c, CURLOPT_MAXAGE_CONN, KEEP_IDLE_S);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	/* An answer announcing more than the limit is refused unread. */
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)out->max);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout * 1000);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	/* The unix socket's checks; a remote runtime is reached by address. */
	curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, remote ? NULL : open_runtime);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, remote ? NULL : &conn);
	curl_easy_setopt(c, CURLOPT_PREREQFUNCTION, remote ? NULL : check_runtime_peer);
	curl_easy_setopt(c, CURLOPT_PREREQDATA, remote ? NULL : &conn);
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)0);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, NULL);
	curl_easy_setopt(c, CURLOPT_PREREQDATA, NULL);
	curl_easy_setopt(c, CURLOPT_READDATA, NULL);
	curl_easy_setopt(c, CURLOPT_SEEKDATA, NULL);
	curl_slist_free_all(hdrs);
	if (rc == CURLE_OK)
		return status;
	if (conn.refused) {
		/* Aborted before anything was sent: a refusal, not a failed call. */
		mlc_log("error", r->request_id, "deployment %s: %s led to a socket bound elsewhere; "
			"refused", dep, conn.path);
		FAIL(f, 503, "deployment '%s': its runtime socket leads elsewhere; refusing to "
		     "connect", dep);
	} else if (rc == CURLE_OPERATION_TIMEDOUT) {
		FAIL(f, 504, "deployment '%s' did not answer within %ld s", dep, timeout);
	} else if (out->overflow || rc == CURLE_FILESIZE_EXCEEDED) {
		FAIL(f, 502, "deployment '%s' sent an answer over the %zu byte limit "
		     "(MLC_PREDICT_MAX_REPLY)", dep, out->max);
	} else if (src.resend_refused) {
		mlc_log("error", r->request_id, "deployment %s: the runtime closed the connection "
			"after the request was sent; not sending it again", dep);
		FAIL(f, 502, "deployment '%s' closed the connection without answering (its runtime "
		     "may have restarted); the call was not repeated", dep);
	} else if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
		FAIL(f, 503, "deployment '%s' is not answering (its runtime is restarting); "
		     "try again shortly", dep);
	else
		FAIL(f, 502, "deployment '%s' failed while answering: %s", dep,
		     curl_easy_strerror(rc));
	return -1;
}

/* ---- data links ---- */

struct link_ctx {
	int allow_private;
	char refused[INET6_ADDRSTRLEN];
};

static int private_v4(uint32_t a)
{
	return (a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 ||
	       (a >> 16) == 0xA9FE || (a >> 20) == 0xAC1 || (a >> 16) == 0xC0A8 ||
	       (a >> 22) == (100u << 2 | 1) || (a >> 28) == 0xE || (a >> 28) == 0xF;
}

static int private_v6(const struct in6_addr *a)
{
	if (IN6_IS_ADDR_V4MAPPED(a)) {
		uint32_t v4;

		memcpy(&v4, a->s6_addr + 12, 4);
		return private_v4(ntohl(v4));
	}
	return IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_UNSPECIFIED(a) ||
	       IN6_IS_ADDR_LINKLOCAL(a) || IN6_IS_ADDR_MULTICAST(a) ||
	       (a->s6_addr[0] & 0xfe) == 0xfc;	/* unique local fc00::/7 */
}

/* Called by libcurl with each address it is about to connect to, the
 * first one and those of redirects alike: the one place where a name
 * that resolves to an internal address can still be refused. */
static curl_socket_t open_checked(void *ctx, curlsocktype purpose, struct curl_sockaddr *sa)
{
	struct link_ctx *lc = ctx;
	int bad = 0;

	if (sa->family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&sa->addr;

		bad = private_v4(ntohl(in->sin_addr.s_addr));
		inet_ntop(AF_INET, &in->sin_addr, lc->refused, sizeof(lc->refused));
	} else if (sa->family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa->addr;

		bad = private_v6(&in6->sin6_addr);
		inet_ntop(AF_INET6, &in6->sin6_addr, lc->refused, sizeof(lc->refused));
	} else {
		bad = 1;
	}
	if (bad && !lc->allow_private)
		return CURL_SOCKET_BAD;
	lc->refused[0] = '\0';
	return socket(sa->family, sa->socktype, sa->protocol);
}

/* Is host in the comma-separated MLC_LINK_ALLOW_HOSTS? */
static int host_allowed(const char *host, const char *list)
{
	size_t n = strlen(host);
	const char *p = list;

	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len == n && !strncasecmp(p, host, n))
			return 1;
		p = end ? end + 1 : NULL;
	}
	return 0;
}

/* Check the link's form and host; reply 422 and return -1 if refused. */
static int link_allowed(struct mlc_req *r, const char *link, struct link_ctx *lc)
{
	const char *allow = mlc_config_get("MLC_LINK_ALLOW_HOSTS", NULL);
	char *scheme = NULL, *host = NULL;
	CURLU *u = curl_url();
	int ok = 0;

	if (curl_url_set(u, CURLUPART_URL, link, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    (!strcmp(scheme, "http") || !strcmp(scheme, "https")))
		ok = 1;
	if (!ok)
		mlc_reply_422_at(r, "data_link", "value_error.url", "data_link must be an http:// or https:// URL");
	else if (allow && *allow && !host_allowed(host, allow))
		mlc_reply_422_at(r, "data_link", "value_error.url.host", "data_link host '%s' is not in MLC_LINK_ALLOW_HOSTS", host);
	lc->allow_private = ok && allow && *allow && host_allowed(host, allow);
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return r->status ? -1 : 0;
}

/* Fetch the CSV behind link into out, or reply 422/502 and return -1. */
static int fetch_link(struct mlc_req *r, const char *link, struct sink *out)
{
	long timeout = mlc_config_long("MLC_LINK_TIMEOUT", 30), status = 0;
	struct link_ctx lc = { 0, "" };
	struct mlc_csv csv;
	char why[96];
	CURLcode rc;
	CURL *c;

	if (link_allowed(r, link, &lc) < 0)
		return -1;
	out->max = (size_t)mlc_config_long("MLC_LINK_MAX_BYTES", 32L << 20);
	c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, link);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	/* A host allowed by name may not hand the request on to another:
	 * redirects are only followed when every hop is address-checked. */
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, lc.allow_private ? 0L : 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 3L);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)out->max);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_checked);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &lc);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "mlconnector");
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	if (lc.refused[0])
		mlc_reply_422_at(r, "data_link", "value_error.url.host",
				 "data_link resolves to a loopback or private address (%s); "
				 "refused (allow the host with MLC_LINK_ALLOW_HOSTS)", lc.refused);
	else if (out->overflow || rc == CURLE_FILESIZE_EXCEEDED)
		mlc_error(r, 413, "data_link content exceeds %zu bytes", out->max);
	else if (rc == CURLE_OPERATION_TIMEDOUT)
		mlc_error(r, 504, "data_link did not finish sending within %ld s "
				 "(MLC_LINK_TIMEOUT)", timeout);
	else if (rc != CURLE_OK)
		mlc_error(r, 502, "cannot fetch data_link: %s", curl_easy_strerror(rc));
	else if (status != 200)
		mlc_reply_422_at(r, "data_link", "value_error.url.status", "data_link answered HTTP %ld", status);
	if (r->status)
		return -1;
	mlc_csv_init(&csv);
	if (mlc_csv_feed(&csv, out->buf ? out->buf : "", out->len) < 0 || mlc_csv_finish(&csv) < 0) {
		mlc_reply_422_at(r, "data_link", "value_error.csv", "data_link is not CSV with a header row: %s",
				 mlc_csv_error(&csv));
		return -1;
	}
	if (mlc_csv_check_utf8(out->buf ? out->buf : "", out->len, why, sizeof(why)) < 0) {
		mlc_reply_422_at(r, "data_link", "value_error.csv", "data_link is not UTF-8 text: %s", why);
		return -1;
	}
	return 0;
}

/* ---- sharing the slow pool ---- */

/* At most this many predict calls of one deployment at a time (0 or
 * absent: half the slow pool, at least 1). */
static int max_per_deployment(void)
{
	long n = mlc_config_long("MLC_PREDICT_MAX_PER_DEPLOYMENT", 0);

	if (n <= 0)
		n = mlc_pool_size(1) / 2;
	return n < 1 ? 1 : n > MLC_MAX_WORKERS ? MLC_MAX_WORKERS : (int)n;
}

/* How long a call waits for one of its deployment's slots before the
 * 429: a fast model frees one within milliseconds, so a burst of calls
 * queues briefly instead of being refused. */
#define SLOT_WAIT_MS 250

/*
 * Take one of the deployment's slots into *fd, or reply 429 (all taken
 * for SLOT_WAIT_MS) and return -1.  A slot file that cannot be used is
 * logged and the call goes on unlimited: the limit protects the other
 * deployments, it is not worth refusing every call for.
 */
static int take_slot(struct mlc_req *r, const char *dep, int *fd)
{
	char dir[4096], name[128];
	int n = max_per_deployment(), rc;

	snprintf(dir, sizeof(dir), "%s/run/slots", mlc_config_get("MLC_VAR", "var"));
	snprintf(name, sizeof(name), "predict-%s", dep);
	rc = mlc_slot_take_wait(dir, name, n, SLOT_WAIT_MS, fd);
	if (rc >= 0)
		return 0;
	if (rc == MLC_SLOTS_FULL) {
		mlc_reply_header(r, "Retry-After: 1");
		mlc_error(r, 429, "deployment '%s' is already answering %d predict calls, "
				 "its most at once (MLC_PREDICT_MAX_PER_DEPLOYMENT); try again shortly",
				 dep, n);
		return -1;
	}
	mlc_log("error", r->request_id, "predict slots of '%s' in %s unusable (%s); "
		"the call is not limited", dep, dir, strerror(errno));
	return 0;
}

/* ---- the route ---- */

/* Single-row answers show one row's values, not a list of one. */
static void unwrap_single(json_object *answer)
{
	static const char *const keys[] = { "feature_importance", "base_value", "output",
					    "output_value", "error_bound" };
	json_object *ex, *v;
	size_t i;

	if (!json_object_object_get_ex(answer, "explanation", &ex) ||
	    !json_object_is_type(ex, json_type_object))
		return;
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (json_object_object_get_ex(ex, keys[i], &v) && json_object_is_type(v, json_type_array) &&
		    json_object_array_length(v) == 1)
			json_object_object_add(ex, keys[i], json_object_get(json_object_array_get_idx(v, 0)));
}

/* The caller's deployment (an admin's: any), with the featurelist it
 * froze when it was created: a later PATCH of the model's featurelist
 * does not change how its rows are read. */
static int load_target(struct mlc_req *r, const char *id, struct target *t, struct mlc_err *err)
{
	struct mlc_param p[3] = { MLC_PSTR(id) };

	memset(t, 0, sizeof(*t));
	mlc_owner_params(r, p + 1);
	return mlc_db_exec(r->db, "SELECT status, reason, endpoint, modelid, ownerid, "
			   "inference_data, features FROM deployments WHERE deployment_id = ? AND "
			   MLC_OWNER_COND, p, 3, target_row, t, err) < 0 ? -1 : 0;
}

/* The body for the runtime: rows or a CSV text, with the feature names. */
static json_object *runtime_request(json_object *rows, const char *csv, int explain,
				    const struct features *f)
{
	json_object *req = json_object_new_object();

	if (rows)
		json_object_object_add(req, "data", json_object_get(rows));
	else
		json_object_object_add(req, "csv", json_object_new_string(csv));
	json_object_object_add(req, "explain", json_object_new_boolean(explain));
	json_object_object_add(req, "feature_names", f->named ? json_object_get(f->names) : NULL);
	return req;
}

/* A refusal by the runtime of the input (422) or of an explanation (409):
 * the client's to fix, answered with the runtime's detail. */
static void relay_refusal(struct mlc_req *r, long status, const struct sink *answer)
{
	char detail[768];

	mlc_runtime_detail(answer->buf, answer->len, detail, sizeof(detail));
	if (status == 409) {
		mlc_error(r, 409, "%s", detail);
	} else {
		json_object *errors = json_object_new_array();

		mlc_validate_error(errors, detail, "value_error.model_input", "body", "data", NULL);
		mlc_reply_422(r, errors);
	}
}

/*
 * The call reached the runtime but brought back no usable answer: record
 * it as a failed operation, its result {"error": detail}, and answer
 * f->code with the detail and the operation's id.  When the database
 * cannot record it, the answer goes without an id (and the log says why).
 */
static void reply_failed_call(struct mlc_req *r, const char *owner, const char *dep,
			      const char *modelid, json_object *rows, const struct call_failure *f)
{
	json_object *result = json_object_new_object(), *o = json_object_new_object();
	struct mlc_err err = { 0, "" };
	char opid[37];

	json_object_object_add(result, "error", json_object_new_string(f->detail));
	json_object_object_add(result, "status", json_object_new_int(f->code));
	if (mlc_record_operation(r, owner, dep, modelid, rows, result, NULL, opid, &err) < 0) {
		mlc_log("error", r->request_id, "the failed call of deployment %s was not recorded: %s",
			dep, err.msg);
		opid[0] = '\0';
	}
	json_object_put(result);
	mlc_log("error", r->request_id, "%d %s", f->code, f->detail);
	json_object_object_add(o, "detail", json_object_new_string(f->detail));
	if (opid[0])
		json_object_object_add(o, "operationid", json_object_new_string(opid));
	mlc_reply_json(r, f->code, o);
}

void mlc_h_predict(struct mlc_req *r)
{
	const char *dep = mlc_param(r, "deployment_id"), *link = NULL, *owner;
	struct sink fetched = { 0 }, reply = { 0 };
	json_object *errors = json_object_new_array(), *m, *rows = NULL, *req = NULL, *answer = NULL;
	struct call_failure fail = { 0, "" };
	struct mlc_err err = { 0, "" };
	struct target t;
	char opid[37];
	int batch = 0, explain = 0, slot = -1, called = 0;
	double start = mlc_metrics_now();
	long status;

	if (!(m = mlc_body_or_422(r, predict_schema, 0))) {
		json_object_put(errors);
		return;
	}
	explain = json_object_get_boolean(json_object_object_get(m, "explain"));
	if (json_object_object_get(m, "data_link"))
		link = json_object_get_string(json_object_object_get(m, "data_link"));
	if (load_target(r, dep, &t, &err) < 0) {
		mlc_reply_err(r, &err);
		goto out;
	}
	if (!t.found) {
		mlc_error(r, 404, "deployment '%s' not found", dep);
		goto out;
	}
	/* The operation is the deployment owner's (the caller's, unless an
	 * admin calls), or the body's ownerid: the token's own, or any an
	 * admin names (with auth off, any). */
	if (!json_object_object_get(m, "ownerid"))
		owner = t.ownerid;
	else if (mlc_body_owner(r, json_object_get_string(json_object_object_get(m, "ownerid")),
				&owner) < 0)
		goto out;
	if (strcmp(t.status, "deployed")) {
		mlc_error(r, 409, "deployment '%s' is %s%s%s", dep, t.status,
				 t.reason[0] ? ": " : "", t.reason);
		goto out;
	}
	if (take_slot(r, dep, &slot) < 0)
		goto out;
	if (link && !t.inference_data) {
		mlc_reply_422_at(r, "data_link", "value_error.inference_data",
				 "deployment '%s' takes inline data (inference_data 0); "
				 "send \"data\" instead of \"data_link\"", dep);
		goto out;
	}
	if (!link && !json_object_object_get(m, "data")) {
		mlc_validate_error(errors, "field required", "value_error.missing", "body", "data", NULL);
		mlc_reply_422(r, errors);
		errors = NULL;
		goto out;
	}
	if (link) {
		if (fetch_link(r, link, &fetched) < 0)
			goto out;
	} else if (!(rows = normalise_rows(json_object_object_get(m, "data"), &t.f, &batch, errors))) {
		mlc_reply_422(r, errors);
		errors = NULL;
		goto out;
	}
	req = runtime_request(rows, fetched.buf ? fetched.buf : "", explain, &t.f);
	reply.max = answer_limit(fetched.len);
	called = 1;
	status = call_runtime(r, dep, t.endpoint,
			      json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN), &reply, &fail);
	/* The slot limits calls to the runtime; recording the operation
	 * (a durable commit) need not keep the next call waiting. */
	mlc_slot_release(&slot);
	if (status < 0 && fail.code == 503) {
		mlc_error(r, 503, "%s", fail.detail);	/* it never got the call */
		goto out;
	}
	if (status == 422 || status == 409) {
		relay_refusal(r, status, &reply);
		goto out;
	}
	/* Everything else the runtime sends is checked before it is used: it
	 * runs the model's code, which can make it answer anything. */
	if (status >= 0 && status != 200) {
		char detail[600];

		mlc_runtime_detail(reply.buf, reply.len, detail, sizeof(detail));
		FAIL(&fail, 502, "deployment '%s' failed: %s", dep, detail);
	} else if (status == 200) {
		struct mlc_rt_call call = { rows ? json_object_array_length(rows) : 0, explain, link != NULL };
		char why[512];

		if (!(answer = mlc_runtime_answer(reply.buf, reply.len, &call, why, sizeof(why))))
			FAIL(&fail, 502, "deployment '%s' sent an answer that cannot be used: %s", dep, why);
	}
	if (!answer) {
		reply_failed_call(r, owner, dep, t.modelid, rows, &fail);
		goto out;
	}
	if (link) {
		/* The runtime parsed the CSV: record the rows it used (checked
		 * to be a list of rows with one prediction each). */
		rows = json_object_get(json_object_object_get(answer, "data"));
		json_object_object_del(answer, "data");
		batch = 1;
	}
	if (mlc_record_operation(r, owner, dep, t.modelid, rows,
				 json_object_object_get(answer, "prediction"), NULL, opid, &err) < 0) {
		mlc_reply_err(r, &err);
		goto out;
	}
	if (!batch)
		unwrap_single(answer);
	json_object_object_add(answer, "operationid", json_object_new_string(opid));
	mlc_reply_json(r, 200, answer);
	answer = NULL;
out:
	if (called)
		mlc_metrics_predict(dep, explain, mlc_metrics_now() - start);
	mlc_slot_release(&slot);
	json_object_put(answer);
	json_object_put(errors);
	json_object_put(req);
	json_object_put(rows);
	json_object_put(t.f.names);
	json_object_put(m);
	free(fetched.buf);
	free(reply.buf);
}
