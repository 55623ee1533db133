/*
 * fuzz-query.c - libFuzzer target for mlc_query_parse, mlc_query_get,
 * mlc_query_count, mlc_query_long and mlc_query_page_url.  The input, cut
 * at its first NUL byte as a C string would be, is the query string (and,
 * for the page URL, the path too).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every pair must be reachable through the lookup functions (checked for
 * the first few only: the lookups are linear, and a quadratic harness
 * would spend the fuzzing time in strcmp). */
static void check_pairs(const struct mlc_query *q)
{
	if (q->n > MLC_QUERY_MAX_PAIRS)
		abort();
	for (size_t i = 0; i < q->n; i++) {
		const struct mlc_query_pair *p = &q->pairs[i];

		if (!p->key || !p->value)
			abort();
		if (i < 8 && (!mlc_query_count(q, p->key) || !mlc_query_get(q, p->key)))
			abort();
	}
}

/* An integer parameter either stays in its bounds or is refused. */
static void check_long(const struct mlc_query *q, const char *key)
{
	char msg[128];
	long v = 0;
	int is_range = -1;

	if (mlc_query_long(q, key, 100, 0, 1000, &v, msg, sizeof(msg), &is_range) == 0) {
		if (v < 0 || v > 1000 || is_range != 0)
			abort();
	} else if (is_range != 0 && is_range != 1) {
		abort();
	}
}

/* The page URL is fit for a Link header whatever the request held, and
 * its query parses again with skip and limit last. */
static void check_page_url(const struct mlc_query *q, const char *path)
{
	char *url = mlc_query_page_url(path, q, 7, 3), *qs, msg[128];
	struct mlc_query back;

	for (const char *c = url; *c; c++)
		if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f || strchr("\"<>\\^`{|}", *c))
			abort();
	qs = strchr(url, '?');
	if (!qs)
		abort();
	/* The re-encoded query may be longer than a request's own query
	 * string may be, and then does not parse: nothing to compare. */
	if (mlc_query_parse(&back, qs + 1, msg, sizeof(msg)) == 0) {
		if (back.n < 2 || strcmp(back.pairs[back.n - 2].key, "skip") ||
		    strcmp(back.pairs[back.n - 1].value, "3"))
			abort();
		mlc_query_release(&back);
	}
	free(url);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *qs = malloc(size + 1);
	struct mlc_query q;
	char msg[128];

	memcpy(qs, data, size);
	qs[size] = '\0';
	if (mlc_query_parse(&q, qs, msg, sizeof(msg)) < 0) {
		if (q.n || q.pairs)
			abort();
	} else {
		check_pairs(&q);
		check_long(&q, "limit");
		check_page_url(&q, qs);
		if (q.n)
			check_long(&q, q.pairs[0].key);
	}
	mlc_query_release(&q);
	free(qs);
	return 0;
}
