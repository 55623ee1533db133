/*
 * http.c - FastCGI request input and JSON replies.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include "conf.h"
#include "http.h"
#include "jsonbuf.h"
#include "log.h"
#include "validate.h"

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 307: return "Temporary Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 507: return "Insufficient Storage";
	default: return "Unknown";
	}
}

static int send_head(struct mlc_req *r, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static const char *param(FCGX_Request *f, const char *name)
{
	return FCGX_GetParam(name, f->envp);
}

/* nginx's $request_id is 32 hex digits; anything else that is not a short
 * token is no id (it goes into headers, logs and bodies). */
static const char *clean_request_id(const char *id)
{
	size_t n;

	if (!id)
		return NULL;
	n = strspn(id, "0123456789abcdefABCDEFghijklmnopqrstuvwxyzGHIJKLMNOPQRSTUVWXYZ-");
	return n > 0 && n <= 64 && id[n] == '\0' ? id : NULL;
}

void mlc_req_init(struct mlc_req *r, FCGX_Request *fcgx, struct mlc_db *db, void *curl)
{
	const char *uri, *q, *cl;

	memset(r, 0, sizeof(*r));
	r->extra_header.max = MLC_EXTRA_HEADER_MAX;
	r->fcgx = fcgx;
	r->db = db;
	r->curl = curl;
	r->method = param(fcgx, "REQUEST_METHOD");
	if (!r->method)
		r->method = "GET";
	r->request_id = clean_request_id(param(fcgx, "REQUEST_ID"));
	r->content_type = param(fcgx, "CONTENT_TYPE");
	/* REQUEST_URI is the raw target: routing must see %2F as data, not as
	 * a separator, which nginx's decoded $uri would lose. */
	uri = param(fcgx, "REQUEST_URI");
	if (!uri || !*uri)
		uri = "/";
	q = strchr(uri, '?');
	r->path = q ? mlc_xstrndup(uri, (size_t)(q - uri)) : mlc_xstrdup(uri);
	cl = param(fcgx, "CONTENT_LENGTH");
	r->content_length = cl && *cl ? strtoll(cl, NULL, 10) : -1;
}

void mlc_req_release(struct mlc_req *r)
{
	/* A kept connection's next request starts without a deadline. */
	if (r->body_timed && r->fcgx->ipcFd >= 0) {
		struct timeval none = { 0, 0 };

		setsockopt(r->fcgx->ipcFd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
		r->body_timed = 0;
	}
	free(r->path);
	mlc_buf_release(&r->extra_header);
	mlc_query_release(&r->query);
	if (r->body)
		json_object_put(r->body);
	r->body = NULL;
	r->path = NULL;
}

void mlc_reply_headerf(struct mlc_req *r, const char *fmt, ...)
{
	struct mlc_buf *h = &r->extra_header;
	size_t was = h->len;
	va_list ap;

	va_start(ap, fmt);
	mlc_buf_vappendf(h, fmt, ap);
	va_end(ap);
	if (mlc_buf_puts(h, "\r\n") < 0) {
		mlc_log("error", r->request_id, "response header dropped: %.80s",
			h->len > was ? h->s + was : "(too long)");
		mlc_buf_setlen(h, was);
	}
}

void mlc_reply_header(struct mlc_req *r, const char *line)
{
	mlc_reply_headerf(r, "%s", line);
}

/*
 * The one place a response head is made and sent: the status line, the
 * lines of fmt (each ending in "\r\n"), those of mlc_reply_header, and
 * the blank line.  Returns 0, or -1 when it would not fit HEAD_MAX (a
 * programming error, logged): a bare 500 went out instead and the caller
 * sends no body.
 */
#define HEAD_MAX (16384 + MLC_EXTRA_HEADER_MAX)
static int send_head(struct mlc_req *r, int status, const char *fmt, ...)
{
	static const char bare[] = "Status: 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n";
	struct mlc_buf h = MLC_BUF_INIT(HEAD_MAX);
	va_list ap;
	int rc = 0;

	r->status = status;
	mlc_buf_appendf(&h, "Status: %d %s\r\n", status, reason_phrase(status));
	va_start(ap, fmt);
	mlc_buf_vappendf(&h, fmt, ap);
	va_end(ap);
	mlc_buf_append(&h, mlc_buf_str(&r->extra_header), r->extra_header.len);
	mlc_buf_puts(&h, "\r\n");
	if (h.failed) {
		mlc_log("error", r->request_id, "the response head of status %d does not fit %d "
			"bytes: 500 sent instead", status, HEAD_MAX);
		r->status = 500;
		FCGX_PutStr(bare, (int)sizeof(bare) - 1, r->fcgx->out);
		rc = -1;
	} else {
		FCGX_PutStr(h.s, (int)h.len, r->fcgx->out);
	}
	mlc_buf_release(&h);
	return rc;
}

void mlc_reply_json(struct mlc_req *r, int status, json_object *obj)
{
	size_t len;
	const char *s;

	if (r->status) {
		mlc_log("error", r->request_id, "second reply suppressed (status %d)", status);
		json_object_put(obj);
		return;
	}
	/* Every error body names the request, as the X-Request-Id header and
	 * the logs do. */
	if (status >= 400 && r->request_id && json_object_is_type(obj, json_type_object) &&
	    json_object_object_get_ex(obj, "detail", NULL) &&
	    !json_object_object_get_ex(obj, "request_id", NULL))
		json_object_object_add(obj, "request_id", json_object_new_string(r->request_id));
	s = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN |
					      JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	if (send_head(r, status, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
		      len) == 0)
		FCGX_PutStr(s, (int)len, r->fcgx->out);
	json_object_put(obj);
}

void mlc_reply_text(struct mlc_req *r, int status, const char *content_type,
		    const char *body, size_t len)
{
	size_t off;

	if (r->status) {
		mlc_log("error", r->request_id, "second reply suppressed (status %d)", status);
		return;
	}
	if (send_head(r, status, "Content-Type: %s\r\nContent-Length: %zu\r\n",
		      content_type, len) < 0)
		return;
	for (off = 0; off < len; off += 1U << 30)
		FCGX_PutStr(body + off, (int)(len - off < (1U << 30) ? len - off : 1U << 30),
			    r->fcgx->out);
}

void mlc_reply_owner(struct mlc_req *r, const char *owner)
{
	char line[32 + 3 * 255];
	size_t n = (size_t)snprintf(line, sizeof(line), "X-Owner: "), i;

	for (i = 0; owner && owner[i] && i < 255; i++) {
		unsigned char c = (unsigned char)owner[i];

		if (c > 0x20 && c < 0x7f && c != '%')
			line[n++] = (char)c;
		else
			n += (size_t)snprintf(line + n, sizeof(line) - n, "%%%02X", c);
	}
	line[n] = '\0';
	mlc_reply_header(r, line);
}

void mlc_reply_empty(struct mlc_req *r, int status, const char *location)
{
	if (r->status) {
		mlc_log("error", r->request_id, "second reply suppressed (status %d)", status);
		return;
	}
	send_head(r, status, "%s%s%sContent-Length: 0\r\n", location ? "Location: " : "",
		  location ? location : "", location ? "\r\n" : "");
}

void mlc_reply_accel(struct mlc_req *r, const char *relpath, const char *filename,
		     const char *sha256)
{
	mlc_reply_accel_in(r, "/_artifacts/", relpath, filename, sha256);
}

void mlc_reply_accel_in(struct mlc_req *r, const char *location, const char *relpath,
			const char *filename, const char *sha256)
{
	/* Store paths and names are made of [A-Za-z0-9._/-] only (see
	 * route-artifacts.c), so they need no quoting here. */
	send_head(r, 200, "Content-Type: application/octet-stream\r\n"
		  "Content-Disposition: attachment; filename=\"%s\"\r\n"
		  "%s%s%sX-Content-Type-Options: nosniff\r\n"
		  "X-Accel-Redirect: %s%s\r\n",
		  filename, sha256 ? "X-Checksum-SHA256: " : "", sha256 ? sha256 : "",
		  sha256 ? "\r\n" : "", location, relpath);
}

/* The one place an error reply is made: {"detail": msg}, logged when
 * the fault is the service's (5xx). */
static int reply_error_msg(struct mlc_req *r, int status, char *msg)
{
	json_object *o = json_object_new_object();

	/* A long message (one quoting a runtime's, say) is cut to the buffer:
	 * never in the middle of a character. */
	mlc_utf8_trim(msg);
	json_object_object_add(o, "detail", json_object_new_string(msg));
	if (status >= 500)
		mlc_log("error", r->request_id, "%d %s", status, msg);
	mlc_reply_json(r, status, o);
	return -1;
}

int mlc_req_error(struct mlc_req *r, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return reply_error_msg(r, status, msg);
}

int mlc_req_error_errno(struct mlc_req *r, const char *fmt, ...)
{
	int e = errno;
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mlc_errno_append(msg, sizeof(msg), e);
	return reply_error_msg(r, mlc_errno_status(e), msg);
}

void mlc_reply_422(struct mlc_req *r, json_object *errors)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "detail", errors);
	mlc_reply_json(r, 422, o);
}

void mlc_reply_422_at(struct mlc_req *r, const char *field, const char *type,
		      const char *fmt, ...)
{
	json_object *errors = json_object_new_array();
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mlc_validate_error(errors, msg, type, "body", field, NULL);
	mlc_reply_422(r, errors);
}

int mlc_reply_err(struct mlc_req *r, const struct mlc_err *err)
{
	int code = err->code >= 400 && err->code < 600 ? err->code : 500;

	return mlc_error(r, code, "%s", err->msg);
}

/* ---- reading the body under deadlines ---- */

static double now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Every read libfcgi makes on the connection from now on fails with
 * EAGAIN after this long without data. */
static void set_read_timeout(struct mlc_req *r, double seconds)
{
	struct timeval tv;

	if (seconds < 0.001)
		seconds = 0.001;
	tv.tv_sec = (time_t)seconds;
	tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
	if (setsockopt(r->fcgx->ipcFd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0)
		r->body_timed = 1;
}

static int readable_now(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) > 0;
}

static int body_cut(struct mlc_req *r, int slow, long idle, long rate)
{
	double took = now_mono() - r->body_start;

	if (slow)
		snprintf(r->body_cut, sizeof(r->body_cut), "the request body arrived at %.0f "
			 "bytes/s on average, below the minimum of %ld bytes/s; abandoned after "
			 "%lld bytes in %.0f s", took > 0 ? (double)r->body_read / took : 0.0, rate,
			 r->body_read, took);
	else
		snprintf(r->body_cut, sizeof(r->body_cut), "no part of the request body arrived "
			 "for %ld s; abandoned after %lld bytes in %.0f s", idle, r->body_read, took);
	mlc_log("warn", r->request_id, "%s %s: %s", r->method, r->path, r->body_cut);
	return -1;
}

/*
 * libfcgi's FCGX_GetStr only returns once it has every byte asked for (or
 * the stream ended), reading as often as it takes: a client sending one
 * byte a second would hold it for hours.  So only bytes libfcgi already
 * holds are taken in bulk; when it holds none, one byte is asked for, which
 * makes it fill its buffer with one read (or very few, for a record header
 * split across reads) under a receive timeout set just before: the time
 * left until the idle deadline or, if sooner, until the moment the body's
 * average rate would fall below the minimum.  More is read within one call
 * only while the connection has data ready, so the deadlines are checked
 * at least once per buffer.
 */
int mlc_body_read(struct mlc_req *r, char *buf, size_t cap)
{
	FCGX_Stream *in = r->fcgx->in;
	long idle = mlc_config_long("MLC_UPLOAD_IDLE_TIMEOUT", 60);
	long rate = mlc_config_long("MLC_UPLOAD_MIN_RATE", 1024);
	size_t got = 0;
	double wait, due, took;
	int n, slow, err;

	if (r->body_cut[0])
		return -1;
	if (idle <= 0)
		idle = 60;
	if (cap > INT_MAX)
		cap = INT_MAX;
	if (!r->body_start)
		r->body_start = r->body_last = now_mono();
	while (got < cap) {
		long avail = (long)(in->stop - in->rdNext);

		if (avail > 0) {
			n = FCGX_GetStr(buf + got, (int)((size_t)avail < cap - got ? (size_t)avail
							  : cap - got), in);
			got += (size_t)(n > 0 ? n : 0);
			continue;
		}
		if (in->isClosed || (got && !readable_now(r->fcgx->ipcFd)))
			break;
		wait = (double)idle;
		slow = 0;
		if (rate > 0) {
			due = (double)(r->body_read + (long long)got) / (double)rate;
			due = r->body_start + (due > (double)idle ? due : (double)idle);
			if (due - now_mono() < wait) {
				wait = due - now_mono();
				slow = 1;
			}
		}
		if (wait <= 0) {
			r->body_read += (long long)got;
			return body_cut(r, 1, idle, rate);
		}
		set_read_timeout(r, wait);
		n = FCGX_GetStr(buf + got, 1, in);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		err = FCGX_GetError(in);
		if (err == EAGAIN || err == EWOULDBLOCK) {
			/* Silent for the whole idle time: the idle deadline, even
			 * when the rate's fell at the same moment. */
			r->body_read += (long long)got;
			if (got || now_mono() - r->body_last < (double)idle - 0.05)
				return body_cut(r, slow, idle, rate);
			return body_cut(r, 0, idle, rate);
		}
		break;	/* the end, or the connection failed */
	}
	r->body_read += (long long)got;
	if (got)
		r->body_last = now_mono();
	took = now_mono() - r->body_start;
	if (got && rate > 0 && took > (double)idle && (double)r->body_read < (double)rate * took)
		return body_cut(r, 1, idle, rate);
	return (int)got;
}

void mlc_reply_body_cut(struct mlc_req *r)
{
	mlc_error(r, 408, "%s", r->body_cut);
}

int mlc_read_body_or_reply(struct mlc_req *r, size_t max, char **buf, size_t *len)
{
	size_t want, got = 0;
	char *b;
	int n;

	if (r->content_length < 0) {
		mlc_error(r, 411, "a Content-Length header is required");
		return -1;
	}
	if ((unsigned long long)r->content_length > max) {
		mlc_error(r, 413, "request body of %lld bytes exceeds the limit of %zu bytes",
				 r->content_length, max);
		return -1;
	}
	want = (size_t)r->content_length;
	b = mlc_xmalloc(want + 1);
	while (got < want) {
		n = mlc_body_read(r, b + got, want - got);
		if (n < 0) {
			free(b);
			mlc_reply_body_cut(r);
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	b[got] = '\0';
	*buf = b;
	*len = got;
	return 0;
}

/* Append the error for one bad integer parameter; 0 when it is fine. */
static int query_long_err(struct mlc_req *r, const char *key, long def, long min, long max,
			  long *out, json_object *errors)
{
	char msg[256];
	int is_range = 0, ge;
	json_object *ctx;

	if (!mlc_query_long(&r->query, key, def, min, max, out, msg, sizeof(msg), &is_range))
		return 0;
	ge = is_range && strstr(msg, "greater") != NULL;
	mlc_validate_error(errors, msg,
			   !is_range ? "type_error.integer"
			   : ge ? "value_error.number.not_ge" : "value_error.number.not_le",
			   "query", key, NULL);
	if (is_range) {
		/* pydantic gives a bound's value as ctx, as the body errors do. */
		ctx = json_object_new_object();
		json_object_object_add(ctx, "limit_value", json_object_new_int64(ge ? min : max));
		json_object_object_add(json_object_array_get_idx(errors,
					json_object_array_length(errors) - 1), "ctx", ctx);
	}
	return -1;
}

int mlc_query_long_or_422(struct mlc_req *r, const char *key, long def,
			  long min, long max, long *out)
{
	json_object *errors = json_object_new_array();

	if (!query_long_err(r, key, def, min, max, out, errors)) {
		json_object_put(errors);
		return 0;
	}
	mlc_reply_422(r, errors);
	return -1;
}

/* The largest skip or limit a client may give (2^40), whatever the
 * configuration says. */
#define PAGING_MAX (1L << 40)

int mlc_paging_or_422(struct mlc_req *r, long def_limit, long *skip, long *limit)
{
	json_object *errors = json_object_new_array();
	long max = mlc_config_long("MLC_MAX_LIMIT", 0);
	int bad;

	if (max <= 0 || max > PAGING_MAX)
		max = PAGING_MAX;
	else if (def_limit == MLC_NO_LIMIT || def_limit > max)
		def_limit = max;
	bad = query_long_err(r, "skip", 0, 0, PAGING_MAX, skip, errors);
	/* MLC_NO_LIMIT is only ever a default: the query's range starts at 0. */
	bad |= query_long_err(r, "limit", def_limit, 0, max, limit, errors);
	if (bad) {
		mlc_reply_422(r, errors);
		return -1;
	}
	json_object_put(errors);
	return 0;
}

json_object *mlc_body_or_422(struct mlc_req *r, const struct mlc_field *schema, int partial)
{
	json_object *errors = json_object_new_array();
	json_object *v = mlc_validate(r->body, schema, "body", errors, partial);

	if (!v) {
		mlc_reply_422(r, errors);
		return NULL;
	}
	json_object_put(errors);
	return v;
}

struct mlc_param mlc_json_param(json_object *v)
{
	size_t len;
	const char *s;

	if (!v)
		return MLC_PNULL;
	s = json_object_to_json_string_length(v, JSON_C_TO_STRING_PLAIN, &len);
	return (struct mlc_param){ MLC_P_STR, s, len, 0 };
}

struct row_sink {
	mlc_row_json to_json;
	json_object *out;	/* the first row */
};

static int first_row(void *ctx, char **cols, const unsigned long *lens, unsigned n)
{
	struct row_sink *s = ctx;

	s->out = s->to_json(cols);
	return 1;
}

/* ---- streamed lists ---- */

/*
 * End a reply whose head already went out so that the client cannot take
 * it for a complete answer: the FastCGI connection is closed without its
 * end-of-request record, and nginx drops the response without the last
 * chunk.  Logs why.
 */
static void mlc_reply_abort(struct mlc_req *r, const char *why)
{
	mlc_log("error", r->request_id, "response cut off: %s", why);
	/* Whatever libfcgi still buffers is not worth sending.  Shutting the
	 * socket down (rather than closing it) leaves the descriptor to
	 * libfcgi, whose FCGX_Finish_r then fails to write the end-of-request
	 * record and closes it.  nginx sees the stream end early ("upstream
	 * prematurely closed") and ends the client's response without its
	 * final chunk, so no client reads a shorter list as complete. */
	if (r->fcgx->ipcFd >= 0)
		shutdown(r->fcgx->ipcFd, SHUT_RDWR);
	r->status = r->status ? r->status : 500;
}

struct list_out {
	struct mlc_req *r;
	mlc_row_json to_json;
	mlc_row_text to_text;	/* instead of to_json: rows written as text */
	const char *link;	/* "Link: ...\r\n" or "" */
	long long rows;		/* rows written */
	int lost;		/* writing to nginx failed: stop, send nothing more */
};

/* Write len bytes to the FastCGI stream (FCGX_PutStr takes an int). */
static int put(struct list_out *o, const char *s, size_t len)
{
	while (len && !o->lost) {
		int n = len > (1U << 30) ? 1 << 30 : (int)len;

		if (FCGX_PutStr(s, n, o->r->fcgx->out) != n)
			o->lost = 1;
		s += n;
		len -= (size_t)n;
	}
	return o->lost ? -1 : 0;
}

/* Status and headers, without a Content-Length: nginx sends the body
 * chunked (HTTP/1.1) or closes the connection after it (HTTP/1.0). */
static void list_head(struct list_out *o)
{
	if (send_head(o->r, 200, "Content-Type: application/json\r\n%s", o->link) < 0)
		o->lost = 1;
	else
		put(o, "[", 1);
}

/* The worker's buffer for rows written as text (one reply at a time). */
static struct mlc_jbuf rowbuf;

/* Rows written as text go out in pieces of about this size. */
#define ROWS_FLUSH (16 * 1024)

static void flush_rows(struct list_out *o)
{
	if (rowbuf.len)
		put(o, rowbuf.s, rowbuf.len);
	rowbuf.len = 0;
}

static int stream_row(void *ctx, char **cols, const unsigned long *lens, unsigned n)
{
	struct list_out *o = ctx;
	json_object *row;
	const char *s;
	size_t len;

	if (o->rows == 0)
		list_head(o);
	if (o->to_text) {
		if (o->rows)
			mlc_jbuf_lit(&rowbuf, ",");
		o->to_text(&rowbuf, cols);
		o->rows++;
		if (rowbuf.len >= ROWS_FLUSH)
			flush_rows(o);
		return o->lost;
	}
	if (o->rows)
		put(o, ",", 1);
	row = o->to_json(cols);
	s = json_object_to_json_string_length(row, JSON_C_TO_STRING_PLAIN |
					      JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	put(o, s, len);
	json_object_put(row);
	o->rows++;
	/* Stopping early is safe: the database layer reads and discards the
	 * rest of the result, so the connection is ready for the next
	 * statement. */
	return o->lost;
}

static void stream_list(struct mlc_req *r, const char *sql, const struct mlc_param *p,
			unsigned np, const char *link, mlc_row_json to_json, mlc_row_text to_text)
{
	struct list_out o = { r, to_json, to_text, link ? link : "", 0, 0 };
	struct mlc_err err = { 0, "" };
	char why[sizeof(err.msg) + 64];

	if (r->status) {
		mlc_log("error", r->request_id, "second reply suppressed (list)");
		return;
	}
	mlc_jbuf_reset(&rowbuf);
	if (mlc_db_exec(r->db, sql, p, np, stream_row, &o, &err) < 0) {
		rowbuf.len = 0;
		if (o.rows == 0) {
			/* Nothing went out yet: an ordinary error reply. */
			mlc_reply_err(r, &err);
			return;
		}
		snprintf(why, sizeof(why), "the database failed after %lld rows of a list: %s",
			 o.rows, err.msg);
		mlc_reply_abort(r, why);
		return;
	}
	if (o.rows == 0)
		list_head(&o);
	flush_rows(&o);
	put(&o, "]", 1);
	if (o.lost)
		mlc_log("warn", r->request_id, "list not delivered: the connection to nginx "
			"failed after %lld rows", o.rows);
}

/* "SELECT 1 FROM <rest> LIMIT 1 OFFSET ?" for a page statement
 * "SELECT <columns> FROM <rest> LIMIT ? OFFSET ?". */
static char *probe_sql(const char *sql)
{
	static const char tail[] = " LIMIT ? OFFSET ?";
	const char *from = strstr(sql, " FROM ");
	size_t n = strlen(sql), t = sizeof(tail) - 1;
	char *out;

	/* The statements are fixed text of the handlers: a wrong shape is a
	 * programming error, found by the first request to the route. */
	if (strncmp(sql, "SELECT ", 7) || !from || n < t || strcmp(sql + n - t, tail))
		mlc_die("a list statement must end in LIMIT ? OFFSET ?: %s", sql);
	n -= t + (size_t)(from - sql);
	out = mlc_xmalloc(n + 64);
	snprintf(out, n + 64, "SELECT 1%.*s LIMIT 1 OFFSET ?", (int)n, from);
	return out;
}

/* The header line "Link: <url>; rel=\"next\"\r\n" of the page after
 * skip..skip+limit (allocated). */
static char *next_link(struct mlc_req *r, long skip, long limit)
{
	char *url = mlc_query_page_url(r->path, &r->query, skip + limit, limit);
	size_t n = strlen(url) + 32;
	char *link = mlc_xmalloc(n);

	snprintf(link, n, "Link: <%s>; rel=\"next\"\r\n", url);
	free(url);
	return link;
}

static void reply_page(struct mlc_req *r, const char *sql, const struct mlc_param *p,
		       unsigned np, long skip, long limit, mlc_row_json to_json,
		       mlc_row_text to_text)
{
	struct mlc_param *pp = mlc_xcalloc(np + 2, sizeof(*pp));
	struct mlc_err err = { 0, "" };
	char *link = NULL;
	long long more = 0;

	if (np)
		memcpy(pp, p, np * sizeof(*pp));
	/* Whether a row follows the page: one probe that stops at the first
	 * row after it, not a count of the whole match.  It runs before the
	 * rows, whose stream cannot add a header once it has started. */
	if (limit > 0) {
		char *probe = probe_sql(sql);

		pp[np] = MLC_PLONG((long long)skip + limit);
		more = mlc_db_exec(r->db, probe, pp, np + 1, NULL, NULL, &err);
		free(probe);
		if (more < 0) {
			free(pp);
			mlc_reply_err(r, &err);
			return;
		}
		if (more)
			link = next_link(r, skip, limit);
	}
	pp[np] = MLC_PLONG(limit == MLC_NO_LIMIT ? LLONG_MAX : limit);
	pp[np + 1] = MLC_PLONG(skip);
	stream_list(r, sql, pp, np + 2, link, to_json, to_text);
	free(link);
	free(pp);
}

void mlc_reply_page(struct mlc_req *r, const char *sql, const struct mlc_param *p,
		    unsigned np, long skip, long limit, mlc_row_json to_json)
{
	reply_page(r, sql, p, np, skip, limit, to_json, NULL);
}

void mlc_reply_page_text(struct mlc_req *r, const char *sql, const struct mlc_param *p,
			 unsigned np, long skip, long limit, mlc_row_text to_text)
{
	reply_page(r, sql, p, np, skip, limit, NULL, to_text);
}

void mlc_reply_page_body(struct mlc_req *r, long skip, long limit, int more,
			 const char *rows, size_t len)
{
	struct list_out o = { r, NULL, NULL, "", 0, 0 };
	char *link = NULL;

	if (r->status) {
		mlc_log("error", r->request_id, "second reply suppressed (page)");
		return;
	}
	if (more)
		o.link = link = next_link(r, skip, limit);
	list_head(&o);
	put(&o, rows, len);
	put(&o, "]", 1);
	if (o.lost)
		mlc_log("warn", r->request_id, "list not delivered: the connection to nginx failed");
	free(link);
}

int mlc_load_row(struct mlc_req *r, const char *sql, const struct mlc_param *p, unsigned np,
		 mlc_row_json to_json, json_object **out, struct mlc_err *err)
{
	struct row_sink s = { to_json, NULL };

	*out = NULL;
	if (mlc_db_exec(r->db, sql, p, np, first_row, &s, err) < 0)
		return -1;
	*out = s.out;
	return 0;
}

void mlc_reply_row_or_404(struct mlc_req *r, int status, const char *sql, const char *id,
			  mlc_row_json to_json, const char *what)
{
	struct mlc_param p[] = { MLC_PSTR(id) };
	struct mlc_err err = { 0, "" };
	json_object *o;

	if (mlc_load_row(r, sql, p, 1, to_json, &o, &err) < 0)
		mlc_reply_err(r, &err);
	else if (!o)
		mlc_error(r, 404, "%s '%s' not found", what, id);
	else
		mlc_reply_json(r, status, o);
}

static int first_row_text(void *ctx, char **cols, const unsigned long *lens, unsigned n)
{
	mlc_row_text to_text = *(mlc_row_text *)ctx;

	to_text(&rowbuf, cols);
	return 1;
}

void mlc_reply_row_text_or_404(struct mlc_req *r, int status, const char *sql, const char *id,
			       mlc_row_text to_text, const char *what)
{
	struct mlc_param p[] = { MLC_PSTR(id) };
	struct mlc_err err = { 0, "" };
	long long n;

	mlc_jbuf_reset(&rowbuf);
	n = mlc_db_exec(r->db, sql, p, 1, first_row_text, &to_text, &err);
	if (n < 0)
		mlc_reply_err(r, &err);
	else if (!n)
		mlc_error(r, 404, "%s '%s' not found", what, id);
	else
		mlc_reply_text(r, status, "application/json", rowbuf.s, rowbuf.len);
	rowbuf.len = 0;
}

const char *mlc_param(struct mlc_req *r, const char *name)
{
	const char *v = mlc_route_param(&r->match, name);

	return v ? v : "";
}
