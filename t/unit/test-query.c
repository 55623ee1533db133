/*
 * test-query.c - mlc_query_parse and friends on ordinary and hostile
 * query strings: ordering of repeated keys, decoding, malformed escapes,
 * the limits, and strict integer parameters.
 */
#include <stdlib.h>
#include <string.h>

#include "query.h"
#include "tap.h"

/* "k=v|k=v|..." for the pairs of q, to compare a whole parse at once. */
static char *dump(const struct mlc_query *q)
{
	size_t len = 1;
	char *s;

	for (size_t i = 0; i < q->n; i++)
		len += strlen(q->pairs[i].key) + strlen(q->pairs[i].value) + 2;
	s = malloc(len);
	s[0] = '\0';
	for (size_t i = 0; i < q->n; i++) {
		if (i)
			strcat(s, "|");
		strcat(s, q->pairs[i].key);
		strcat(s, "=");
		strcat(s, q->pairs[i].value);
	}
	return s;
}

/* qs parses, and its pairs dump as want. */
static void parses_as(const char *title, const char *qs, const char *want)
{
	struct mlc_query q;
	char msg[128] = "";
	int rc = mlc_query_parse(&q, qs, msg, sizeof(msg));
	char *got = dump(&q);

	if (!ok(rc == 0, "%s: accepted", title))
		diag("message: %s", msg);
	is_str(got, want, "%s: pairs", title);
	free(got);
	mlc_query_release(&q);
}

/* qs is refused with message want, leaving q empty. */
static void fails_with(const char *title, const char *qs, const char *want)
{
	struct mlc_query q;
	char msg[128] = "";
	int rc = mlc_query_parse(&q, qs, msg, sizeof(msg));

	ok(rc == -1 && q.n == 0 && q.pairs == NULL, "%s: refused, nothing to release", title);
	is_str(msg, want, "%s: message", title);
}

/* A query string of n pieces "k=v" joined by '&' (caller frees). */
static char *pieces(size_t n)
{
	char *s = malloc(4 * n + 1);

	s[0] = '\0';
	for (size_t i = 0; i < n; i++)
		strcat(s, i ? "&k=v" : "k=v");
	return s;
}

static void test_basics(void)
{
	struct mlc_query q;
	char msg[64];

	ok(mlc_query_parse(&q, NULL, msg, sizeof(msg)) == 0 && q.n == 0, "a NULL query has no pairs");
	mlc_query_release(&q);
	ok(mlc_query_parse(&q, "", msg, sizeof(msg)) == 0 && q.n == 0, "an empty query has no pairs");
	mlc_query_release(&q);
	parses_as("pairs keep their order", "skip=0&limit=50", "skip=0|limit=50");
	parses_as("empty pieces are skipped", "&&&", "");
	parses_as("empty pieces around pairs are skipped", "&a=1&&b=2&", "a=1|b=2");
	parses_as("a key without '=' has an empty value", "flag", "flag=");
	parses_as("a key with '=' and nothing after has an empty value", "key=", "key=");
	parses_as("'=value' gives an empty key", "=value", "=value");
	parses_as("only the first '=' separates", "a=b=c", "a=b=c");
	parses_as("';' is not a separator", "a=1;b=2", "a=1;b=2");
}

static void test_repeated(void)
{
	struct mlc_query q;
	char msg[64];

	parses_as("repeated keys are all kept, in order", "tags=fast&x=1&tags=tree-based&tags=fast",
		  "tags=fast|x=1|tags=tree-based|tags=fast");
	mlc_query_parse(&q, "tags=a&tags=b&other=&tags=c", msg, sizeof(msg));
	is_int(mlc_query_count(&q, "tags"), 3, "count of a repeated key");
	is_str(mlc_query_get(&q, "tags"), "a", "get returns the first value of a repeated key");
	is_str(mlc_query_get(&q, "other"), "", "get of a key with an empty value is \"\"");
	is_str(mlc_query_get(&q, "missing"), NULL, "get of an absent key is NULL");
	is_int(mlc_query_count(&q, "missing"), 0, "count of an absent key is 0");
	is_str(mlc_query_get(&q, "tag"), NULL, "a key prefix does not match");
	mlc_query_release(&q);
	mlc_query_release(&q);
	ok(q.n == 0 && q.pairs == NULL, "release twice is harmless");
}

static void test_decoding(void)
{
	parses_as("'+' is a space", "q=a+b", "q=a b");
	parses_as("%20 is a space", "q=a%20b", "q=a b");
	parses_as("%2B is a literal plus", "q=1%2B1", "q=1+1");
	parses_as("keys are decoded too", "my+key%21=1", "my key!=1");
	parses_as("encoded '&' and '=' do not split", "q=a%26b%3Dc", "q=a&b=c");
	parses_as("UTF-8 escapes decode to bytes", "name=caf%C3%A9", "name=caf\xc3\xa9");
	parses_as("lowercase hex decodes", "p=%2f", "p=/");
	/* Malformed escapes are kept literally, as curl and Python do. */
	parses_as("'%zz' is kept literally", "q=%zz", "q=%zz");
	parses_as("'%' at the end is kept literally", "q=100%", "q=100%");
	parses_as("'%2' at the end is kept literally", "q=%2", "q=%2");
	parses_as("'%%41' keeps the first '%'", "q=%%41", "q=%A");
	parses_as("a '%' key alone", "%", "%=");
}

static void test_hostile(void)
{
	fails_with("%00 in a value", "a=1&b=x%00y", "query string contains an encoded NUL byte (%00)");
	fails_with("%00 in a key", "a%00=1", "query string contains an encoded NUL byte (%00)");
	fails_with("%00 in a key without '='", "%00", "query string contains an encoded NUL byte (%00)");

	char *at_limit = pieces(MLC_QUERY_MAX_PAIRS);
	char *over = pieces(MLC_QUERY_MAX_PAIRS + 1);
	struct mlc_query q;
	char msg[128];

	ok(mlc_query_parse(&q, at_limit, msg, sizeof(msg)) == 0 && q.n == MLC_QUERY_MAX_PAIRS,
	   "exactly MLC_QUERY_MAX_PAIRS pairs are accepted");
	mlc_query_release(&q);
	fails_with("one pair too many", over, "query string has more than 256 parameters");
	free(at_limit);
	free(over);

	char *amps = malloc(MLC_QUERY_MAX_LEN + 1);

	memset(amps, '&', MLC_QUERY_MAX_LEN);
	memcpy(amps, "a=1&b=2", 7);
	amps[MLC_QUERY_MAX_LEN] = '\0';
	parses_as("empty pieces do not count as pairs, up to the length limit", amps, "a=1|b=2");
	free(amps);

	char *len_ok = malloc(MLC_QUERY_MAX_LEN + 2);

	memset(len_ok, 'x', MLC_QUERY_MAX_LEN + 1);
	len_ok[MLC_QUERY_MAX_LEN] = '\0';
	ok(mlc_query_parse(&q, len_ok, msg, sizeof(msg)) == 0 && q.n == 1 &&
	   strlen(q.pairs[0].key) == MLC_QUERY_MAX_LEN, "a query of exactly MLC_QUERY_MAX_LEN bytes is accepted");
	mlc_query_release(&q);
	len_ok[MLC_QUERY_MAX_LEN] = 'x';
	len_ok[MLC_QUERY_MAX_LEN + 1] = '\0';
	fails_with("one byte too long", len_ok, "query string is longer than 8192 bytes");
	free(len_ok);

	char small[8];

	ok(mlc_query_parse(&q, "%00", small, sizeof(small)) == -1 && strlen(small) == 7,
	   "a short message buffer is truncated, not overrun");
}

/* mlc_query_long on the value of "limit" in qs, checking result and message. */
static void long_case(const char *title, const char *qs, int want_rc, long want,
		      const char *want_msg, int want_range)
{
	struct mlc_query q;
	char msg[128] = "";
	long v = -42;
	int is_range = -1;
	int rc;

	mlc_query_parse(&q, qs, msg, sizeof(msg));
	rc = mlc_query_long(&q, "limit", 100, 0, 1000, &v, msg, sizeof(msg), &is_range);
	if (want_rc == 0) {
		ok(rc == 0 && v == want && is_range == 0, "%s: gives %ld", title, want);
		if (rc != 0 || v != want)
			diag("got rc %d value %ld message %s", rc, v, msg);
	} else {
		ok(rc == -1, "%s: refused", title);
		is_str(msg, want_msg, "%s: message", title);
		is_int(is_range, want_range, "%s: is_range", title);
	}
	mlc_query_release(&q);
}

static void test_long(void)
{
	const char *nan = "value is not a valid integer";
	const char *ge = "ensure this value is greater than or equal to 0";
	const char *le = "ensure this value is less than or equal to 1000";

	long_case("absent key gives the default", "skip=5", 0, 100, NULL, 0);
	long_case("plain number", "limit=50", 0, 50, NULL, 0);
	long_case("lower bound itself", "limit=0", 0, 0, NULL, 0);
	long_case("upper bound itself", "limit=1000", 0, 1000, NULL, 0);
	long_case("minus zero", "limit=-0", 0, 0, NULL, 0);
	long_case("encoded plus sign", "limit=%2B7", 0, 7, NULL, 0);
	long_case("leading zeros are still base 10", "limit=010", 0, 10, NULL, 0);
	long_case("first of repeated keys counts", "limit=5&limit=7", 0, 5, NULL, 0);
	long_case("below the minimum", "limit=-1", -1, 0, ge, 1);
	long_case("above the maximum", "limit=1001", -1, 0, le, 1);
	long_case("far above the maximum but fits a long", "limit=9223372036854775807", -1, 0, le, 1);
	long_case("overflowing a long", "limit=9223372036854775808", -1, 0, nan, 0);
	long_case("underflowing a long", "limit=-99999999999999999999", -1, 0, nan, 0);
	long_case("empty value", "limit=", -1, 0, nan, 0);
	long_case("key without '='", "limit", -1, 0, nan, 0);
	long_case("raw '+' decodes to a space", "limit=+5", -1, 0, nan, 0);
	long_case("leading space", "limit=%205", -1, 0, nan, 0);
	long_case("trailing space", "limit=5%20", -1, 0, nan, 0);
	long_case("trailing letters", "limit=5a", -1, 0, nan, 0);
	long_case("hex", "limit=0x10", -1, 0, nan, 0);
	long_case("exponent", "limit=1e3", -1, 0, nan, 0);
	long_case("decimal point", "limit=1.0", -1, 0, nan, 0);
	long_case("underscore separator", "limit=1_000", -1, 0, nan, 0);
	long_case("sign alone", "limit=-", -1, 0, nan, 0);
	long_case("double sign", "limit=--5", -1, 0, nan, 0);

	struct mlc_query q;
	char msg[64];
	long v;

	mlc_query_parse(&q, "limit=5000", msg, sizeof(msg));
	ok(mlc_query_long(&q, "limit", 0, 0, 1000, &v, msg, sizeof(msg), NULL) == -1,
	   "is_range may be NULL");
	ok(mlc_query_long(&q, "skip", -3, 0, 1000, &v, msg, sizeof(msg), NULL) == 0 && v == -3,
	   "the default is returned as given, without a range check");
	mlc_query_release(&q);
}

/* The page URL for path and qs. */
static char *page_url(const char *path, const char *qs, long skip, long limit)
{
	struct mlc_query q;
	char msg[128];
	char *url;

	if (mlc_query_parse(&q, qs, msg, sizeof(msg)) < 0)
		return NULL;
	url = mlc_query_page_url(path, &q, skip, limit);
	mlc_query_release(&q);
	return url;
}

/* Whether every byte of s may stand in a Link header's <URI-Reference>. */
static int link_safe(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f || strchr("\"<>\\^`{|}", *s))
			return 0;
	return 1;
}

static void test_page_url(void)
{
	struct mlc_query a, b;
	char msg[128], *url, *qs;
	const char *hostile = "tags=%0D%0ALink:%20x&tags=%3C%3E%22%5C&t%C3%BC=%FF%01+%2B&=v&k&skip=9";

	url = page_url("/model/all", "", 100, 100);
	is_str(url, "/model/all?skip=100&limit=100", "no query: skip and limit only");
	free(url);
	url = page_url("/model/all", "limit=5&skip=2&limit=7", 7, 5);
	is_str(url, "/model/all?skip=7&limit=5", "every skip and limit of the request is replaced");
	free(url);
	url = page_url("/model/search", "tags=a&limit=2&tags=b+c&tags=d%26e", 2, 2);
	is_str(url, "/model/search?tags=a&tags=b%20c&tags=d%26e&skip=2&limit=2",
	       "repeated keys keep their order; values are re-encoded");
	free(url);
	url = page_url("/model/getkind/a%20b+c%2F%C3%BC", "limit=1", 1, 1);
	is_str(url, "/model/getkind/a%20b+c%2F%C3%BC?skip=1&limit=1",
	       "the raw path keeps its escapes and its literal '+'");
	free(url);
	url = page_url("/x/a b<>\"\xc3\xbc", "", 0, 1);
	is_str(url, "/x/a%20b%3C%3E%22%C3%BC?skip=0&limit=1",
	       "a raw space, '<', '>', '\"' or non-ASCII byte in the path is escaped");
	free(url);

	/* Hostile values: CR LF, '<', '>', '"', '\\', bytes above 0x7f and
	 * controls all come out escaped, and the URL's query decodes to the
	 * same pairs. */
	url = page_url("/p", hostile, 30, 10);
	ok(url && link_safe(url), "hostile values give a URL a header can carry: %s", url ? url : "(null)");
	qs = url ? strchr(url, '?') + 1 : "";
	if (ok(mlc_query_parse(&a, hostile, msg, sizeof(msg)) == 0 &&
	       mlc_query_parse(&b, qs, msg, sizeof(msg)) == 0, "both query strings parse")) {
		char *da = dump(&a), *db = dump(&b);

		is_str(db, "tags=\r\nLink: x|tags=<>\"\\|t\xc3\xbc=\xff\x01 +|=v|k=|skip=30|limit=10",
		       "the URL's query decodes to the request's pairs, skip and limit replaced");
		ok(strstr(da, "skip=9") != NULL, "(the request had its own skip)");
		free(da);
		free(db);
		mlc_query_release(&a);
		mlc_query_release(&b);
	}
	free(url);
}

int main(void)
{
	test_basics();
	test_repeated();
	test_decoding();
	test_hostile();
	test_long();
	test_page_url();
	return done_testing();
}
