/*
 * query.h - decoded query strings (application/x-www-form-urlencoded),
 * with repeated keys kept in order.
 */
#ifndef MLC_QUERY_H
#define MLC_QUERY_H

#include <stddef.h>

struct mlc_query_pair {
	char *key;   /* decoded, NUL-terminated */
	char *value; /* decoded, NUL-terminated ("" for "key" or "key=") */
};

struct mlc_query {
	struct mlc_query_pair *pairs;
	size_t n;
};

/*
 * Parse qs (may be NULL or "").  Pairs are separated by '&' (empty pieces
 * skipped), '+' means space, %XX is decoded with curl_easy_unescape.  A
 * decoded key or value containing a NUL byte, more than MLC_QUERY_MAX_PAIRS
 * pairs, or a query longer than MLC_QUERY_MAX_LEN makes it return -1 with
 * a message in msg; q is then empty and needs no release.
 */
#define MLC_QUERY_MAX_PAIRS 256
#define MLC_QUERY_MAX_LEN 8192
int mlc_query_parse(struct mlc_query *q, const char *qs, char *msg, size_t msglen);
void mlc_query_release(struct mlc_query *q);

/* First value of key, or NULL. */
const char *mlc_query_get(const struct mlc_query *q, const char *key);
/* Number of pairs with this key. */
size_t mlc_query_count(const struct mlc_query *q, const char *key);

/*
 * Decode an integer query parameter (the first value when the key is
 * repeated; is_range may be NULL).  Returns 0 and sets *out (def when the
 * key is absent), or -1 when the value is not a base-10 integer (msg gets
 * "value is not a valid integer") or lies outside [min, max] (msg gets
 * "ensure this value is greater than or equal to MIN" / "... less than or
 * equal to MAX"; *is_range set to 1).
 */
int mlc_query_long(const struct mlc_query *q, const char *key, long def,
		   long min, long max, long *out, char *msg, size_t msglen,
		   int *is_range);

/*
 * The URL of another page of the same list, for a Link header: path (the
 * raw request path, still percent-encoded), then the pairs of q in order
 * except skip and limit, re-encoded, then skip=SKIP&limit=LIMIT.  Every
 * byte a header or a <URI-Reference> cannot carry (controls, space, '"',
 * '<', '>', '\\', non-ASCII...) is percent-encoded, in the path too.
 * Returns a new string.
 */
char *mlc_query_page_url(const char *path, const struct mlc_query *q, long skip, long limit);

#endif
