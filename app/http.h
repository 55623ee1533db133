/*
 * http.h - one FastCGI request as the handlers see it, and the helpers
 * that read its input and write its JSON reply.
 */
#ifndef MLC_HTTP_H
#define MLC_HTTP_H

#include <stddef.h>
#include <fcgiapp.h>
#include <json-c/json.h>

#include "auth.h"
#include "buf.h"
#include "db.h"
#include "query.h"
#include "router.h"

struct mlc_req {
	FCGX_Request *fcgx;
	const char *method;
	const char *request_id;		/* nginx's $request_id (REQUEST_ID); NULL when absent or not a short token */
	const char *content_type;
	char *path;			/* raw path, without the query string */
	long long content_length;	/* -1 when absent */
	struct mlc_query query;
	struct mlc_route_match match;
	json_object *body;		/* parsed JSON body (routes flagged MLC_R_JSON) */
	struct mlc_db *db;
	void *curl;			/* the worker's libcurl handle (CURL *), kept alive across requests */
	struct mlc_principal who;	/* the caller (see auth.h), filled before the handler runs */
	int status;			/* the status sent, 0 until a reply went out */
	struct mlc_buf extra_header;	/* "Name: value\r\n" lines added to the reply */
	/* Reading the body (mlc_body_read): */
	long long body_read;		/* bytes read so far */
	double body_start;		/* monotonic seconds at the first read */
	double body_last;		/* ... when the last bytes arrived */
	int body_timed;			/* a receive timeout is set on the connection */
	char body_cut[192];		/* why the body was abandoned, "" unless it was */
};

/* Fill r from the FastCGI parameters; the caller releases it with
 * mlc_req_release. */
void mlc_req_init(struct mlc_req *r, FCGX_Request *fcgx, struct mlc_db *db, void *curl);
void mlc_req_release(struct mlc_req *r);

/* Send obj (consumed) as the JSON body with this status.  An error
 * (status >= 400) object with a "detail" gets the request's id as
 * "request_id" too. */
void mlc_reply_json(struct mlc_req *r, int status, json_object *obj);
/* Send len bytes of body as they are, with this Content-Type. */
void mlc_reply_text(struct mlc_req *r, int status, const char *content_type,
		    const char *body, size_t len);
/* Error replies {"detail": "<formatted sentence>"}: mlc_error(r, status,
 * fmt, ...) and mlc_error_errno(r, fmt, ...), see mlc.h.  Both return -1. */
/* Send a 422 {"detail": errors} (errors consumed). */
void mlc_reply_422(struct mlc_req *r, json_object *errors);
/* Send a 422 with one detail entry at ["body", field] (field may be
 * NULL for ["body"]). */
void mlc_reply_422_at(struct mlc_req *r, const char *field, const char *type,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Send the status a lower layer chose (err->code, 500 when unset), with
 * err->msg as the detail; returns -1. */
int mlc_reply_err(struct mlc_req *r, const struct mlc_err *err);
/* Send status with no body, and a Location header when location is not
 * NULL (it must be a clean header value, see mlc_route_slash_redirect). */
void mlc_reply_empty(struct mlc_req *r, int status, const char *location);
/*
 * Hand the response over to nginx: it sends the store file relpath (from
 * the internal location /_artifacts/) as an attachment called filename,
 * with its SHA-256 in X-Checksum-SHA256.
 */
void mlc_reply_accel(struct mlc_req *r, const char *relpath, const char *filename,
		     const char *sha256);
/* The same for a file under another internal nginx location ("/_bundles/");
 * sha256 may be NULL (no X-Checksum-SHA256 header). */
void mlc_reply_accel_in(struct mlc_req *r, const char *location, const char *relpath,
			const char *filename, const char *sha256);
/* Add a response header line to the next reply (e.g. "Allow: GET"), or
 * one made printf-style.  The lines are made by the service, never copied
 * unbounded from a request: all of them together hold at most
 * MLC_EXTRA_HEADER_MAX bytes, and a line past that is dropped and logged,
 * never cut. */
#define MLC_EXTRA_HEADER_MAX 4096
void mlc_reply_header(struct mlc_req *r, const char *line);
void mlc_reply_headerf(struct mlc_req *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Name the request's owner in X-Owner (its first 255 bytes, bytes outside
 * visible ASCII and '%' percent-encoded), which nginx writes into the
 * access log and keeps from the client (docs/OPERATIONS.md). */
void mlc_reply_owner(struct mlc_req *r, const char *owner);

/*
 * Read the next piece of the request body into buf (at most cap bytes),
 * under two deadlines: the next bytes must arrive within
 * MLC_UPLOAD_IDLE_TIMEOUT seconds (default 60), and once that many seconds
 * have passed since the first read, the body must have come at
 * MLC_UPLOAD_MIN_RATE bytes per second on average (default 1024; 0: no
 * minimum).  Returns the count (> 0), 0 at the end of the body (or when
 * the connection failed: the caller compares with Content-Length), or -1
 * when a deadline passed: r->body_cut then says which, the reason is
 * logged, and nothing more can be read.  The caller replies 408 (see
 * mlc_reply_body_cut).
 */
int mlc_body_read(struct mlc_req *r, char *buf, size_t cap);

/* Reply 408 with r->body_cut as the detail. */
void mlc_reply_body_cut(struct mlc_req *r);

/*
 * Read the whole body into memory, refusing (413) more than max bytes,
 * with the deadlines of mlc_body_read (408).  Returns 0 with *buf
 * (NUL-terminated, caller frees) and *len, or -1 after replying.
 */
int mlc_read_body_or_reply(struct mlc_req *r, size_t max, char **buf, size_t *len);

/*
 * "Value or reply": parse an integer query parameter into *out, or send a
 * 422 naming ["query", key] and return -1.
 */
int mlc_query_long_or_422(struct mlc_req *r, const char *key, long def,
			  long min, long max, long *out);

/*
 * The skip and limit query parameters of a list route: skip defaults to 0,
 * limit to def_limit (MLC_NO_LIMIT: every row).  A limit above the
 * configured maximum MLC_MAX_LIMIT (0, the default, sets none) is refused,
 * never reduced; with a maximum set, a default above it becomes the
 * maximum (the page then says when rows follow, see mlc_reply_page).
 * Returns 0, or -1 after a 422 listing every bad parameter.
 */
#define MLC_NO_LIMIT (-1L)
#define MLC_DEFAULT_LIMIT 100L
int mlc_paging_or_422(struct mlc_req *r, long def_limit, long *skip, long *limit);

/*
 * "Value or reply" for bodies: r->body validated against schema (see
 * mlc_validate; partially for PATCH), or a 422 listing every failure and
 * NULL.  The caller owns the result.
 */
struct mlc_field;
json_object *mlc_body_or_422(struct mlc_req *r, const struct mlc_field *schema, int partial);

/* A JSON value as a statement parameter (its compact text; SQL NULL for
 * NULL).  The text belongs to v. */
struct mlc_param mlc_json_param(json_object *v);

/* Turns one result row into its JSON object (see mlc_db_exec for cols). */
typedef json_object *(*mlc_row_json)(char **cols);

/* Writes one result row as JSON text (jsonbuf.h): the hot routes' rows,
 * without a json-c object per row. */
struct mlc_jbuf;
typedef void (*mlc_row_text)(struct mlc_jbuf *b, char **cols);

/*
 * One page of a list, as 200 with a JSON list of the rows of sql, mapped
 * through to_json.  The list is streamed: each row is written as it is
 * fetched, so a worker holds one row at a time whatever the count, and the
 * reply has no Content-Length.  An error before the first row is an
 * ordinary error reply; after it, the response is cut off: the FastCGI
 * connection is closed without its end-of-request record, so that the
 * client cannot take it for a complete answer.  sql has the shape
 * "SELECT <columns> FROM <rest> LIMIT ? OFFSET ?"; p holds its np other
 * parameters, and limit (MLC_NO_LIMIT: every row) and skip are bound after
 * them.  When the page is cut by limit, that is when a row follows it
 * ("SELECT 1 FROM <rest> LIMIT 1 OFFSET skip+limit" finds one), the reply
 * carries Link: <path?...&skip=NEXT&limit=LIMIT>; rel="next".
 * The statements bind np + MLC_PAGE_PARAMS parameters in all.
 */
#define MLC_PAGE_PARAMS 2
void mlc_reply_page(struct mlc_req *r, const char *sql, const struct mlc_param *p,
		    unsigned np, long skip, long limit, mlc_row_json to_json);
/* The same with rows written as text. */
void mlc_reply_page_text(struct mlc_req *r, const char *sql, const struct mlc_param *p,
			 unsigned np, long skip, long limit, mlc_row_text to_text);

/*
 * 200 with a page whose rows the caller has already written, joined by
 * commas (rows[0..len)), with the head mlc_reply_page sends: a Link to the
 * next page when more says a row follows it.
 */
void mlc_reply_page_body(struct mlc_req *r, long skip, long limit, int more,
			 const char *rows, size_t len);

/* The first row of sql as JSON in *out (NULL when there is none), or -1
 * with err. */
int mlc_load_row(struct mlc_req *r, const char *sql, const struct mlc_param *p, unsigned np,
		 mlc_row_json to_json, json_object **out, struct mlc_err *err);

/* Reply status with the row sql finds for id (its only parameter), or 404
 * "<what> '<id>' not found". */
void mlc_reply_row_or_404(struct mlc_req *r, int status, const char *sql, const char *id,
			  mlc_row_json to_json, const char *what);
/* The same with the row written as text. */
void mlc_reply_row_text_or_404(struct mlc_req *r, int status, const char *sql, const char *id,
			       mlc_row_text to_text, const char *what);

/* The route capture called name (always present for a matched route). */
const char *mlc_param(struct mlc_req *r, const char *name);

#endif
