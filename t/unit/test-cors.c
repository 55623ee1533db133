/*
 * test-cors.c - mlc_cors_check (MLC_CORS_ORIGINS against the Origin
 * header) and mlc_cors_allow_headers (the preflight's Allow-Headers from
 * Access-Control-Request-Headers), with hostile lists and header values.
 */
#include <stdlib.h>
#include <string.h>

#include "cors.h"
#include "tap.h"

static const char *name(enum mlc_cors c)
{
	switch (c) {
	case MLC_CORS_OFF: return "off";
	case MLC_CORS_DENIED: return "denied";
	case MLC_CORS_ANY: return "any";
	case MLC_CORS_ORIGIN: return "origin";
	}
	return "?";
}

static void check(const char *list, const char *origin, enum mlc_cors want, const char *title)
{
	is_str(name(mlc_cors_check(list, origin)), name(want), "%s", title);
}

static void test_check(void)
{
	const char *two = "http://a.example, https://b.example:8443";

	check(NULL, "http://a.example", MLC_CORS_OFF, "no list: off");
	check("", "http://a.example", MLC_CORS_OFF, "an empty list: off");
	check(" ,\t, ", "http://a.example", MLC_CORS_OFF, "a list of separators only: off");
	check(two, NULL, MLC_CORS_OFF, "no Origin header: not a CORS request");
	check(two, "", MLC_CORS_OFF, "an empty Origin header: not a CORS request");
	check("*", NULL, MLC_CORS_OFF, "'*' without an Origin: off");

	check("*", "http://x.example", MLC_CORS_ANY, "'*' allows any origin");
	check("*", "null", MLC_CORS_ANY, "'*' allows the origin 'null'");
	check("*", "http://x\r\nSet-Cookie: a=b", MLC_CORS_ANY,
	      "'*' answers '*' even to a hostile origin, which is never echoed");
	check("http://a.example *", "http://x.example", MLC_CORS_ANY, "'*' among origins allows all");

	check(two, "http://a.example", MLC_CORS_ORIGIN, "the first origin of a list");
	check(two, "https://b.example:8443", MLC_CORS_ORIGIN, "the second origin, with a port");
	check("http://a.example https://b.example:8443", "https://b.example:8443", MLC_CORS_ORIGIN,
	      "space-separated");
	check("http://a.example,https://b.example:8443", "https://b.example:8443", MLC_CORS_ORIGIN,
	      "comma-separated without spaces");
	check("\thttp://a.example\t", "http://a.example", MLC_CORS_ORIGIN, "tabs around an entry");
	check("HTTP://A.Example", "http://a.example", MLC_CORS_ORIGIN, "ASCII case is ignored");
	check("http://a.example/", "http://a.example", MLC_CORS_ORIGIN, "an entry's trailing '/' is ignored");
	check("null", "null", MLC_CORS_ORIGIN, "'null' is allowed only when listed");

	check(two, "http://c.example", MLC_CORS_DENIED, "an unlisted origin");
	check(two, "https://a.example", MLC_CORS_DENIED, "another scheme is another origin");
	check(two, "http://a.example:80", MLC_CORS_DENIED, "a port is compared as written");
	check(two, "https://b.example", MLC_CORS_DENIED, "without the listed port");
	check(two, "http://a.example/", MLC_CORS_DENIED, "the Origin's own trailing '/' is not ignored");
	check(two, "http://a.exampl", MLC_CORS_DENIED, "a prefix of an entry");
	check(two, "http://a.example.evil", MLC_CORS_DENIED, "an entry as a prefix of the origin");
	check(two, "evil.http://a.example", MLC_CORS_DENIED, "an entry as a suffix of the origin");
	check(two, "http://a.example, https://b.example:8443", MLC_CORS_DENIED,
	      "the whole list as the Origin (two Origin headers joined)");
	check(two, "http://a.example,", MLC_CORS_DENIED, "an origin with a comma");
	check(two, "http://a.example https://b.example:8443", MLC_CORS_DENIED, "an origin with a space");
	check("http://a.example\r\n", "http://a.example\r\n", MLC_CORS_DENIED,
	      "CR LF is never echoed, even if the list held it");
	check("http://a.example", "http://a.example\r\nX-Evil: 1", MLC_CORS_DENIED, "a header injection");
	check("http://caf\xc3\xa9.example", "http://caf\xc3\xa9.example", MLC_CORS_DENIED,
	      "bytes outside printable ASCII are never echoed");
	check("http://a.example", "http://a.example\x7f", MLC_CORS_DENIED, "DEL");
	check("null", "http://a.example", MLC_CORS_DENIED, "'null' in the list allows only 'null'");
	check("http://a.example", "null", MLC_CORS_DENIED, "'null' when not listed");
	check("http://a.example", "*", MLC_CORS_DENIED, "an Origin of '*' is not the wildcard");
	check("/", "", MLC_CORS_OFF, "an entry that is only '/' with no Origin");
	check("/", "http://a.example", MLC_CORS_DENIED, "an entry that is only '/' is no wildcard");

	size_t n = MLC_CORS_MAX_ORIGIN;
	char *big = malloc(n + 2), *list = malloc(n + 2);

	memset(big, 'a', n);
	memcpy(big, "http://", 7);
	big[n] = '\0';
	strcpy(list, big);
	check(list, big, MLC_CORS_ORIGIN, "an origin of the maximum length");
	big[n] = 'a';
	big[n + 1] = '\0';
	strcpy(list, big);
	check(list, big, MLC_CORS_DENIED, "one byte longer is refused");
	free(big);
	free(list);

	size_t m = 1 << 20;
	char *huge = malloc(m + 1);

	memset(huge, ',', m);
	huge[m] = '\0';
	check(huge, "http://a.example", MLC_CORS_OFF, "a megabyte of commas is an empty list");
	memset(huge, 'a', m);
	check(huge, "http://a.example", MLC_CORS_DENIED, "a megabyte-long entry matches nothing");
	check("http://a.example", huge, MLC_CORS_DENIED, "a megabyte-long origin is refused");
	free(huge);
}

static void allow(const char *requested, size_t cap, const char *want, const char *title)
{
	char buf[2048];

	memset(buf, 'x', sizeof(buf));
	mlc_cors_allow_headers(requested, buf, cap);
	is_str(buf, want, "%s", title);
	ok(cap >= sizeof(buf) || buf[cap] == 'x', "%s: nothing written past %zu bytes", title, cap);
}

static void test_allow_headers(void)
{
	const char *base = "Authorization, Content-Type";
	char buf[8];

	allow(NULL, 256, base, "no requested headers: Authorization and Content-Type");
	allow("", 256, base, "an empty list");
	allow("x-requested-with", 256, "Authorization, Content-Type, x-requested-with",
	      "a requested header is echoed as sent");
	allow("authorization,content-type", 256, base, "the two always listed are not repeated");
	allow("Content-Type, X-A ,\tX-B", 256, "Authorization, Content-Type, X-A, X-B",
	      "spaces and tabs around entries are dropped");
	allow("x-a, X-A, x-b", 256, "Authorization, Content-Type, x-a, x-b", "duplicates are listed once");
	allow(",,x-a,,", 256, "Authorization, Content-Type, x-a", "empty entries are skipped");
	allow("x-a\r\nSet-Cookie: a=b, x-b", 256, "Authorization, Content-Type, x-b",
	      "an entry with CR LF is left out");
	allow("x a, x-b", 256, "Authorization, Content-Type, x-b", "an entry with a space inside is left out");
	allow("x:a, x(b), x\"c\", x-d", 256, "Authorization, Content-Type, x-d",
	      "entries with separators are left out");
	allow("x-\xc3\xa9, x-b", 256, "Authorization, Content-Type, x-b", "non-ASCII entries are left out");
	allow("!#$%&'*+.^_`|~09azAZ", 256, "Authorization, Content-Type, !#$%&'*+.^_`|~09azAZ",
	      "every token character is accepted");
	allow("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 256,
	      "Authorization, Content-Type, aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	      "a name of 64 bytes is accepted");
	allow("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, x", 256,
	      "Authorization, Content-Type, x", "a name of 65 bytes is left out");
	allow("x-a, x-bb", 34, "Authorization, Content-Type, x-a", "an entry that would not fit is left out whole");
	allow("x-a", 28, base, "exactly the base fits in 28 bytes");
	allow("x-a", 27, "Authorization, x-a", "an entry that does not fit is left out whole, a later one may fit");
	allow("x-a", 1, "", "one byte holds only the terminator");

	strcpy(buf, "keep");
	mlc_cors_allow_headers("x-a", buf, 0);
	is_str(buf, "keep", "a zero-length buffer is not written");

	size_t n = 1 << 20;
	char *many = malloc(n + 1), out[1024];

	for (size_t i = 0; i < n; i++)
		many[i] = i % 4 == 3 ? ',' : 'a' + (char)(i / 4 / (i % 4 == 0 ? 1 : i % 4 == 1 ? 26 : 676) % 26);
	many[n] = '\0';
	mlc_cors_allow_headers(many, out, sizeof(out));
	ok(strlen(out) < sizeof(out) && !strncmp(out, base, strlen(base)),
	   "a megabyte of short names fills the buffer and stops (%zu bytes)", strlen(out));
	free(many);
}

int main(void)
{
	test_check();
	test_allow_headers();
	return done_testing();
}
