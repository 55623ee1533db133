/*
 * router.c - matching a request's method and raw path against the route
 * table.
 *
 * Paths are compared segment by segment on the still-encoded bytes, so
 * "/model/%61ll" is not the literal "/model/all"; only captured values are
 * percent-decoded, one segment at a time, which is why an encoded "%2F"
 * can never split a capture into two segments.  The lookup remembers
 * whether any row matched the path at all, so the caller can tell 405
 * from 404.
 */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "mlc.h"
#include "router.h"

/* A decoded value can be at most a third of its encoded length shorter,
 * so longer segments are refused without decoding them. */
#define MAX_RAW_PARAM_LEN (3 * (MLC_ROUTE_MAX_PARAM_LEN - 1))

/* Length of the segment starting at s (up to the next '/' or the end). */
static size_t seg_len(const char *s)
{
	return strcspn(s, "/");
}

/* A pattern segment of the form "{name}" with a non-empty name. */
static int is_capture(const char *seg, size_t len)
{
	return len > 2 && seg[0] == '{' && seg[len - 1] == '}';
}

/*
 * Percent-decode the path segment seg[0..len) into dst (which holds
 * MLC_ROUTE_MAX_PARAM_LEN bytes).  Returns -1 when the result would not
 * fit, contains a '/' or NUL byte, or is "." or "..": none of them can be
 * an identifier, and a "/" or ".." smuggled in as %2F or %2E%2E must not
 * reach a handler that builds file paths.
 */
static int decode_segment(const char *seg, size_t len, char *dst)
{
	char *raw;
	int outlen = 0;
	int rc = -1;

	if (len > MAX_RAW_PARAM_LEN)
		return -1;
	raw = curl_easy_unescape(NULL, seg, (int)len, &outlen);
	if (!raw)
		mlc_die("out of memory decoding a path segment");
	if ((size_t)outlen < MLC_ROUTE_MAX_PARAM_LEN &&
	    !memchr(raw, '\0', (size_t)outlen) && !memchr(raw, '/', (size_t)outlen)) {
		memcpy(dst, raw, (size_t)outlen);
		dst[outlen] = '\0';
		rc = strcmp(dst, ".") && strcmp(dst, "..") ? 0 : -1;
	}
	curl_free(raw);
	return rc;
}

/*
 * Store the capture named by the pattern segment pat[0..plen) ("{name}")
 * with the value decoded from the path segment seg[0..slen).
 */
static int capture(struct mlc_route_match *m, const char *pat, size_t plen,
		   const char *seg, size_t slen)
{
	size_t i = m->nparams;

	if (i >= MLC_ROUTE_MAX_PARAMS)
		mlc_die("route pattern has more than %d captures", MLC_ROUTE_MAX_PARAMS);
	if (decode_segment(seg, slen, m->values[i]) < 0)
		return -1;
	m->names[i] = pat + 1;
	m->name_lens[i] = plen - 2;
	m->nparams++;
	return 0;
}

/*
 * Does path match pattern?  Captures are written to m (its nparams reset
 * first).  Both must start with '/'; an empty path segment never matches,
 * which refuses "//" and a trailing slash alike, except that the pattern
 * "/" matches exactly the path "/".
 */
static int match_path(const char *pattern, const char *path, struct mlc_route_match *m)
{
	const char *p = pattern, *s = path;

	m->nparams = 0;
	if (p[0] != '/' || s[0] != '/')
		return 0;
	if (!strcmp(pattern, "/"))
		return !strcmp(path, "/");
	for (;;) {
		size_t plen = seg_len(++p), slen = seg_len(++s);

		if (!slen)
			return 0;
		if (is_capture(p, plen)) {
			if (capture(m, p, plen, s, slen) < 0)
				return 0;
		} else if (plen != slen || memcmp(p, s, slen)) {
			return 0;
		}
		p += plen;
		s += slen;
		if (!*p || !*s)
			return !*p && !*s;
	}
}

/*
 * Find the first row of routes[0..n) matching method and path; see
 * router.h.  Rows whose path matches but whose method does not are
 * remembered in m->path_matched for the 405 answer.
 */
int mlc_route_match(const struct mlc_route *routes, size_t n,
		    const char *method, const char *path,
		    struct mlc_route_match *m)
{
	m->route = NULL;
	m->nparams = 0;
	m->path_matched = 0;
	if (!path || !method)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!match_path(routes[i].pattern, path, m))
			continue;
		m->path_matched = 1;
		if (!strcmp(routes[i].method, method)) {
			m->route = &routes[i];
			return 0;
		}
	}
	m->nparams = 0;
	return -1;
}

const char *mlc_route_param(const struct mlc_route_match *m, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < m->nparams; i++)
		if (m->name_lens[i] == len && !memcmp(m->names[i], name, len))
			return m->values[i];
	return NULL;
}

/* Is method already one of the ", "-separated entries of list? */
static int list_has(const char *list, const char *method)
{
	size_t len = strlen(method);

	for (const char *p = list; *p; ) {
		size_t n = strcspn(p, ",");

		if (n == len && !memcmp(p, method, len))
			return 1;
		p += n;
		p += strspn(p, ", ");
	}
	return 0;
}

/*
 * Write the methods of every row matching path, each once, in table order.
 * An entry that would not fit in buf is left out whole rather than cut.
 */
void mlc_route_allowed(const struct mlc_route *routes, size_t n,
		       const char *path, char *buf, size_t buflen)
{
	struct mlc_route_match scratch;
	size_t used = 0;

	if (!buflen)
		return;
	buf[0] = '\0';
	if (!path)
		return;
	for (size_t i = 0; i < n; i++) {
		const char *method = routes[i].method;
		size_t need = strlen(method) + (used ? 2 : 0);

		if (!match_path(routes[i].pattern, path, &scratch) || list_has(buf, method))
			continue;
		if (used + need >= buflen)
			continue;
		if (used)
			memcpy(buf + used, ", ", 2);
		memcpy(buf + used + (used ? 2 : 0), method, strlen(method) + 1);
		used += need;
	}
}

/* Bytes a Location header carries as they are: RFC 3986 unreserved,
 * sub-delims, ':', '@', '/', and '%' (the path and query are still
 * percent-encoded, so an escape stays one); '?' only in the query. */
static int location_safe(unsigned char c, int in_query)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
		return 1;
	if (c == '?')
		return in_query;
	return c && strchr("-._~!$&'()*+,;=:@/%", c) != NULL;
}

/* Append s[0..len) to out, percent-encoding every unsafe byte. */
static char *encode_into(char *out, const char *s, size_t len, int in_query)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (location_safe(c, in_query)) {
			*out++ = (char)c;
		} else {
			*out++ = '%';
			*out++ = hex[c >> 4];
			*out++ = hex[c & 15];
		}
	}
	return out;
}

char *mlc_route_slash_redirect(const struct mlc_route *routes, size_t n,
			       const char *path, const char *query)
{
	struct mlc_route_match scratch;
	size_t len, qlen = query ? strlen(query) : 0;
	char *stripped, *out = NULL, *end;
	int found = 0;

	if (!path || path[0] != '/' || !strcmp(path, "/"))
		return NULL;
	len = strlen(path);
	if (path[len - 1] != '/')
		return NULL;
	while (len > 0 && path[len - 1] == '/')
		len--;
	/* A path ending in '/' matches no row (only "/" itself does), and
	 * "//" strips to nothing. */
	if (!len)
		return NULL;
	stripped = mlc_xstrndup(path, len);
	for (size_t i = 0; i < n && !found; i++)
		found = match_path(routes[i].pattern, stripped, &scratch);
	/* A match starts with '/' and a non-empty segment: never "//host". */
	if (found) {
		out = mlc_xmalloc(3 * (len + qlen) + 2);
		end = encode_into(out, stripped, len, 0);
		if (qlen) {
			*end++ = '?';
			end = encode_into(end, query, qlen, 1);
		}
		*end = '\0';
	}
	free(stripped);
	return out;
}
