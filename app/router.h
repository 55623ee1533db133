/*
 * router.h - the route table: method + path pattern -> handler.
 * Patterns are literal segments and "{name}" captures of one non-empty
 * segment, e.g. "/model/{model_id}/files/{kind}".  The first matching row
 * wins, so literal rows go before capture rows that would also match.
 */
#ifndef MLC_ROUTER_H
#define MLC_ROUTER_H

#include <stddef.h>

#define MLC_ROUTE_MAX_PARAMS 4
#define MLC_ROUTE_MAX_PARAM_LEN 256

struct mlc_route {
	const char *method;	/* "GET", "POST", ... */
	const char *pattern;
	void *handler;		/* opaque to the router */
	unsigned flags;		/* opaque to the router */
	int scope;		/* opaque to the router: what a caller needs (auth.h) */
};

struct mlc_route_match {
	const struct mlc_route *route; /* NULL when nothing matched */
	size_t nparams;
	const char *names[MLC_ROUTE_MAX_PARAMS]; /* point into the pattern, not NUL-terminated at '}' */
	size_t name_lens[MLC_ROUTE_MAX_PARAMS];
	char values[MLC_ROUTE_MAX_PARAMS][MLC_ROUTE_MAX_PARAM_LEN]; /* percent-decoded */
	int path_matched;	/* some row matched the path (but maybe not the method) */
};

/*
 * Match method + path (the raw, still percent-encoded path without the
 * query string) against routes[0..n).  Returns 0 and fills m->route on a
 * match; returns -1 with m->route NULL otherwise, and m->path_matched says
 * whether the answer is 405 (path known, method not) rather than 404.
 * A trailing slash is not ignored; empty segments ("//"), a captured value
 * that decodes to contain '/' or a NUL byte, or one longer than
 * MLC_ROUTE_MAX_PARAM_LEN-1 bytes do not match.  Nor does a captured value
 * that decodes to "." or "..", which could only be a path trick.
 */
int mlc_route_match(const struct mlc_route *routes, size_t n,
		    const char *method, const char *path,
		    struct mlc_route_match *m);

/* Value of the capture named name, or NULL. */
const char *mlc_route_param(const struct mlc_route_match *m, const char *name);

/* Comma-separated methods allowed for path, for the Allow header of a 405
 * (e.g. "GET, PATCH, DELETE"); writes "" when none. */
void mlc_route_allowed(const struct mlc_route *routes, size_t n,
		       const char *path, char *buf, size_t buflen);

/*
 * Where FastAPI's redirect_slashes would send a path that ends in '/':
 * the path without its trailing slashes, when some row (of any method)
 * matches that, plus "?query" when query is not empty.  The answer is
 * fit for a Location header as it is: bytes other than RFC 3986's
 * unreserved, sub-delims, ':', '@', '/', '%' (and '?' in the query) are
 * percent-encoded.  It always starts with "/" and a non-empty segment.
 * Returns a string the caller frees, or NULL: no trailing slash, nothing
 * left after stripping ("/", "//"), or no row for the stripped path.
 */
char *mlc_route_slash_redirect(const struct mlc_route *routes, size_t n,
			       const char *path, const char *query);

#endif
