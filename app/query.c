/*
 * query.c - decoding query strings (application/x-www-form-urlencoded)
 * into an ordered list of key/value pairs.
 *
 * The rules follow what FastAPI clients already rely on (Python's
 * parse_qsl with keep_blank_values): pieces are split on '&' only, empty
 * pieces are skipped, "key" and "key=" both give an empty value, "=v"
 * gives an empty key, and repeated keys are all kept in order
 * (?tags=a&tags=b).  Malformed escapes such as "%zz" or a '%' at the end
 * are kept literally, as curl_easy_unescape and Python's unquote both do.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlc.h"
#include "query.h"

/*
 * Decode one key or value: '+' becomes a space first, so that an encoded
 * "%2B" survives as a '+'.  Returns a new string, or NULL when the decoded
 * bytes contain a NUL, which no C consumer downstream could represent.
 */
static char *decode_part(const char *s, size_t len)
{
	char *plus = mlc_xstrndup(s, len);
	char *raw, *res = NULL;
	int outlen = 0;

	for (char *p = plus; *p; p++)
		if (*p == '+')
			*p = ' ';
	raw = curl_easy_unescape(NULL, plus, (int)len, &outlen);
	free(plus);
	if (!raw)
		mlc_die("out of memory decoding a query string");
	if (!memchr(raw, '\0', (size_t)outlen))
		res = mlc_xstrndup(raw, (size_t)outlen);
	curl_free(raw);
	return res;
}

/*
 * Decode the piece s[0..len) ("key", "key=" or "key=value") into the
 * next free pair of q.  Returns -1 when either half decodes to a NUL.
 */
static int add_pair(struct mlc_query *q, const char *s, size_t len)
{
	const char *eq = memchr(s, '=', len);
	size_t klen = eq ? (size_t)(eq - s) : len;
	struct mlc_query_pair *pair = &q->pairs[q->n];

	pair->key = decode_part(s, klen);
	pair->value = eq ? decode_part(eq + 1, len - klen - 1) : mlc_xstrdup("");
	if (!pair->key || !pair->value) {
		free(pair->key);
		free(pair->value);
		return -1;
	}
	q->n++;
	return 0;
}

/* Number of non-empty '&'-separated pieces in qs. */
static size_t count_pieces(const char *qs)
{
	size_t n = 0;

	for (const char *p = qs; *p; p++)
		if (*p != '&' && (p == qs || p[-1] == '&'))
			n++;
	return n;
}

/*
 * Parse qs into q; see query.h.  The limits are checked before anything
 * is decoded, so a hostile query costs at most one pass over 8 KiB.
 */
int mlc_query_parse(struct mlc_query *q, const char *qs, char *msg, size_t msglen)
{
	size_t npieces;
	const char *p;

	q->pairs = NULL;
	q->n = 0;
	if (!qs || !*qs)
		return 0;
	if (strnlen(qs, MLC_QUERY_MAX_LEN + 1) > MLC_QUERY_MAX_LEN) {
		snprintf(msg, msglen, "query string is longer than %d bytes",
			 MLC_QUERY_MAX_LEN);
		return -1;
	}
	npieces = count_pieces(qs);
	if (npieces > MLC_QUERY_MAX_PAIRS) {
		snprintf(msg, msglen, "query string has more than %d parameters",
			 MLC_QUERY_MAX_PAIRS);
		return -1;
	}
	if (!npieces)
		return 0;
	q->pairs = mlc_xcalloc(npieces, sizeof(*q->pairs));
	for (p = qs; *p; ) {
		size_t len = strcspn(p, "&");

		if (len && add_pair(q, p, len) < 0) {
			mlc_query_release(q);
			snprintf(msg, msglen, "query string contains an encoded NUL byte (%%00)");
			return -1;
		}
		p += len;
		if (*p == '&')
			p++;
	}
	return 0;
}

void mlc_query_release(struct mlc_query *q)
{
	for (size_t i = 0; i < q->n; i++) {
		free(q->pairs[i].key);
		free(q->pairs[i].value);
	}
	free(q->pairs);
	q->pairs = NULL;
	q->n = 0;
}

const char *mlc_query_get(const struct mlc_query *q, const char *key)
{
	for (size_t i = 0; i < q->n; i++)
		if (!strcmp(q->pairs[i].key, key))
			return q->pairs[i].value;
	return NULL;
}

size_t mlc_query_count(const struct mlc_query *q, const char *key)
{
	size_t n = 0;

	for (size_t i = 0; i < q->n; i++)
		if (!strcmp(q->pairs[i].key, key))
			n++;
	return n;
}

/*
 * Strict base-10: an optional sign and at least one digit, nothing else
 * (no spaces, no "0x", no "1e3", no "1_000").  Returns -1 when s is not
 * such a number or does not fit a long.
 */
static int parse_long(const char *s, long *out)
{
	const char *d = s + (*s == '-' || *s == '+');
	char *end;

	if (!*d || strspn(d, "0123456789") != strlen(d))
		return -1;
	errno = 0;
	*out = strtol(s, &end, 10);
	return errno == ERANGE || *end ? -1 : 0;
}

/*
 * Read the integer parameter key; see query.h.  With repeated keys the
 * first one counts, as with mlc_query_get.  is_range may be NULL.
 */
int mlc_query_long(const struct mlc_query *q, const char *key, long def,
		   long min, long max, long *out, char *msg, size_t msglen,
		   int *is_range)
{
	const char *s = mlc_query_get(q, key);
	long v;

	if (is_range)
		*is_range = 0;
	if (!s) {
		*out = def;
		return 0;
	}
	if (parse_long(s, &v) < 0) {
		snprintf(msg, msglen, "value is not a valid integer");
		return -1;
	}
	if (v < min || v > max) {
		if (v < min)
			snprintf(msg, msglen, "ensure this value is greater than or equal to %ld", min);
		else
			snprintf(msg, msglen, "ensure this value is less than or equal to %ld", max);
		if (is_range)
			*is_range = 1;
		return -1;
	}
	*out = v;
	return 0;
}

/* A growing string. */
struct sbuf {
	char *s;
	size_t len, cap;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->s = mlc_xrealloc(b->s, b->cap);
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

/* Percent-encode s into b; keep lists the characters besides the
 * unreserved ones (RFC 3986) that stay as they are. */
static void sb_encode(struct sbuf *b, const char *s, const char *keep)
{
	static const char hex[] = "0123456789ABCDEF";
	char esc[3] = { '%', 0, 0 };

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    strchr("-._~", c) || (keep && strchr(keep, c))) {
			sb_add(b, s, 1);
		} else {
			esc[1] = hex[c >> 4];
			esc[2] = hex[c & 15];
			sb_add(b, esc, 3);
		}
	}
}

char *mlc_query_page_url(const char *path, const struct mlc_query *q, long skip, long limit)
{
	struct sbuf b = { NULL, 0, 0 };
	char num[64];

	/* The path is percent-encoded already: '%' stays, and so do the other
	 * characters a path segment may hold literally. */
	sb_encode(&b, path, "%/!$&'()*+,;=:@");
	sb_add(&b, "?", 1);
	for (size_t i = 0; i < q->n; i++) {
		const struct mlc_query_pair *p = &q->pairs[i];

		if (!strcmp(p->key, "skip") || !strcmp(p->key, "limit"))
			continue;
		sb_encode(&b, p->key, NULL);
		sb_add(&b, "=", 1);
		sb_encode(&b, p->value, NULL);
		sb_add(&b, "&", 1);
	}
	snprintf(num, sizeof(num), "skip=%ld&limit=%ld", skip, limit);
	sb_add(&b, num, strlen(num));
	return b.s;
}
