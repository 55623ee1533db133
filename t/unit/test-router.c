/*
 * test-router.c - mlc_route_match, mlc_route_param, mlc_route_allowed and
 * mlc_route_slash_redirect on the service's own route table (app/routes.c,
 * through mlc_routes), with hostile paths: 404 versus 405, row order,
 * slashes, encoded separators and NUL bytes, and lengths; the 307 target
 * of a path with a trailing slash, whose answer goes into a Location
 * header; and the table itself: every row reachable, none twice, captures
 * checked by the flags that dispatch relies on.  A few shapes the table
 * does not have (a root route, similar method names) use small tables of
 * their own.
 */
#include <stdlib.h>
#include <string.h>

#include "routes.h"
#include "tap.h"

static const struct mlc_route *routes;
static size_t NROUTES;

/* "METHOD pattern" of the row method + path matches, "404" or "405". */
static const char *lookup(const char *method, const char *path, struct mlc_route_match *m)
{
	static char buf[256];

	if (mlc_route_match(routes, NROUTES, method, path, m) == 0) {
		snprintf(buf, sizeof(buf), "%s %s", m->route->method, m->route->pattern);
		return buf;
	}
	return m->path_matched ? "405" : "404";
}

static void routes_to(const char *method, const char *path, const char *want, const char *title)
{
	struct mlc_route_match m;

	is_str(lookup(method, path, &m), want, "%s", title);
}

/* method + path matches row want with capture name = value. */
static void captures(const char *method, const char *path, const char *want, const char *name,
		     const char *value, const char *title)
{
	struct mlc_route_match m;

	is_str(lookup(method, path, &m), want, "%s: row", title);
	is_str(mlc_route_param(&m, name), value, "%s: %s", title, name);
}

#define HEALTH "GET /health"
#define MODEL_ALL "GET /model/all"
#define MODEL_ADD "POST /model/add"
#define MODEL_GET "GET /model/{model_id}"
#define MODEL_PATCH "PATCH /model/{model_id}"
#define MODEL_FILE "GET /model/{model_id}/files/{kind}"
#define DEP_PREDICT "POST /deployment/{deployment_id}/predict"

static void test_status(void)
{
	struct mlc_route_match m;

	routes_to("GET", "/health", HEALTH, "a literal route matches");
	routes_to("GET", "/", "404", "the service has no root route");
	routes_to("GET", "/nope", "404", "an unknown path is 404");
	routes_to("POST", "/health", "405", "a known path with another method is 405");
	routes_to("PUT", "/model/abc", "405", "a capture path with an unknown method is 405");
	routes_to("get", "/health", "405", "methods are case-sensitive");
	routes_to("HEAD", "/health", "405", "HEAD is not GET to the router");
	ok(mlc_route_match(routes, NROUTES, "GET", "/nope", &m) == -1 && m.route == NULL &&
	   m.path_matched == 0 && m.nparams == 0, "no match leaves no route and no captures");
	ok(mlc_route_match(routes, NROUTES, "POST", "/model/x", &m) == -1 && m.route == NULL &&
	   m.path_matched == 1 && m.nparams == 0, "a 405 leaves no route and no captures");
	ok(mlc_route_match(routes, 0, "GET", "/health", &m) == -1 && !m.path_matched,
	   "an empty table matches nothing");
}

static void test_order(void)
{
	struct mlc_route_match m;

	routes_to("GET", "/model/all", MODEL_ALL, "a literal row listed first beats the capture row");
	is_int(!strcmp(lookup("GET", "/model/all", &m), MODEL_ALL) ? (int)m.nparams : -1, 0,
	       "the literal match has no captures");
	captures("GET", "/model/abc", MODEL_GET, "model_id", "abc", "a capture row matches other values");
	/* The first row matching method and path wins, so PATCH /model/all
	 * reaches the PATCH capture row with the id "all". */
	captures("PATCH", "/model/all", MODEL_PATCH, "model_id", "all",
		 "another method falls through to a capture row");
	captures("GET", "/model/%61ll", MODEL_GET, "model_id", "all",
		 "literals compare the raw bytes, so an encoded literal is a capture");
	routes_to("POST", "/model/add", MODEL_ADD, "POST to a literal");
	routes_to("GET", "/model/add", MODEL_GET, "GET of the add path is a model id");
}

static void test_captures(void)
{
	struct mlc_route_match m;

	is_str(lookup("GET", "/model/m-1/files/model", &m), MODEL_FILE, "two captures: row");
	is_int(m.nparams, 2, "two captures: count");
	is_str(mlc_route_param(&m, "model_id"), "m-1", "two captures: first");
	is_str(mlc_route_param(&m, "kind"), "model", "two captures: second");
	is_str(mlc_route_param(&m, "model"), NULL, "a prefix of a capture name is not a name");
	is_str(mlc_route_param(&m, "model_id_x"), NULL, "a longer name is not a name");
	is_str(mlc_route_param(&m, "nope"), NULL, "an unknown name is NULL");
	captures("GET", "/model/a%20b", MODEL_GET, "model_id", "a b", "captures are percent-decoded");
	captures("GET", "/model/a+b", MODEL_GET, "model_id", "a+b", "'+' in a path is not a space");
	captures("GET", "/model/%zz", MODEL_GET, "model_id", "%zz", "a malformed escape is kept literally");
	captures("GET", "/model/100%", MODEL_GET, "model_id", "100%", "a '%' at the end is kept literally");
	captures("GET", "/model/caf%C3%A9", MODEL_GET, "model_id", "caf\xc3\xa9", "UTF-8 escapes decode to bytes");
	captures("GET", "/model/...", MODEL_GET, "model_id", "...", "three dots are an ordinary value");
	captures("POST", "/deployment/dep-5678/predict", DEP_PREDICT, "deployment_id", "dep-5678",
		 "capture in the middle of a pattern");
}

static void test_hostile(void)
{
	routes_to("GET", "/model/a%2Fb", "404", "an encoded '/' in a capture does not match");
	routes_to("GET", "/model/a%2fb", "404", "an encoded '/' in lowercase does not match");
	routes_to("GET", "/model/%2F", "404", "a capture that is only an encoded '/' does not match");
	routes_to("GET", "/model/a%00b", "404", "an encoded NUL in a capture does not match");
	routes_to("GET", "/model/..", "404", "'..' as a capture does not match");
	routes_to("GET", "/model/%2E%2E", "404", "an encoded '..' as a capture does not match");
	routes_to("GET", "/model/.", "404", "'.' as a capture does not match");
	routes_to("GET", "/health/", "404", "a trailing slash is not ignored on a literal");
	routes_to("GET", "/model/abc/", "404", "a trailing slash is not ignored after a capture");
	routes_to("GET", "//health", "404", "an empty first segment does not match");
	routes_to("GET", "/model//abc", "404", "'//' in the middle does not match");
	routes_to("GET", "/model/", "404", "an empty capture does not match");
	routes_to("GET", "//", "404", "'//' alone does not match the root");
	routes_to("GET", "health", "404", "a path without the leading slash does not match");
	routes_to("GET", "", "404", "an empty path does not match");
	routes_to("GET", "/model/all?x=1", MODEL_GET, "a query string left on the path is part of the segment");
	routes_to("GET", "/model/abc/files/model/extra", "404", "extra segments do not match");
	routes_to("GET", "/deployment/get/status", "404", "missing segments do not match");

	struct mlc_route_match m;

	ok(mlc_route_match(routes, NROUTES, "GET", NULL, &m) == -1 && !m.path_matched,
	   "a NULL path matches nothing");
	ok(mlc_route_match(routes, NROUTES, NULL, "/health", &m) == -1, "a NULL method matches nothing");
}

static void test_lengths(void)
{
	size_t max = MLC_ROUTE_MAX_PARAM_LEN - 1;
	char *path = malloc(8 + 3 * (max + 1) + 1);
	struct mlc_route_match m;

	strcpy(path, "/model/");
	memset(path + 7, 'a', max);
	path[7 + max] = '\0';
	is_str(lookup("GET", path, &m), MODEL_GET, "a capture of the maximum length matches");
	is_int(strlen(m.values[0]), max, "and is kept whole");
	strcat(path, "a");
	routes_to("GET", path, "404", "one byte over the maximum does not match");

	path[7] = '\0';
	for (size_t i = 0; i < max; i++)
		strcat(path, "%41");
	is_str(lookup("GET", path, &m), MODEL_GET, "an encoded capture decoding to the maximum matches");
	strcat(path, "%41");
	routes_to("GET", path, "404", "an encoded capture decoding to one byte more does not match");
	free(path);

	size_t n = 100000;
	char *long_path = malloc(2 * n + 1);

	for (size_t i = 0; i < n; i++)
		memcpy(long_path + 2 * i, "/a", 2);
	long_path[2 * n] = '\0';
	routes_to("GET", long_path, "404", "a path of 100000 segments does not match");
	long_path[2 * n - 1] = '\0';
	routes_to("GET", long_path, "404", "the same path with a trailing slash does not match");
	memset(long_path, 'x', 2 * n);
	long_path[0] = '/';
	long_path[2 * n] = '\0';
	routes_to("GET", long_path, "404", "a single 200000-byte segment does not match");
	memcpy(long_path, "/model/", 7);
	routes_to("GET", long_path, "404", "a 200000-byte capture does not match");
	free(long_path);
}

static void test_allowed(void)
{
	char buf[64];

	mlc_route_allowed(routes, NROUTES, "/model/abc", buf, sizeof(buf));
	is_str(buf, "GET, PATCH, DELETE", "allowed methods of a capture path");
	mlc_route_allowed(routes, NROUTES, "/model/all", buf, sizeof(buf));
	is_str(buf, "GET, PATCH, DELETE", "each method once, though two GET rows match");
	mlc_route_allowed(routes, NROUTES, "/model/add", buf, sizeof(buf));
	is_str(buf, "POST, GET, PATCH, DELETE", "literal and capture rows together, in table order");
	mlc_route_allowed(routes, NROUTES, "/nope", buf, sizeof(buf));
	is_str(buf, "", "no methods for an unknown path");
	mlc_route_allowed(routes, NROUTES, NULL, buf, sizeof(buf));
	is_str(buf, "", "no methods for a NULL path");
	mlc_route_allowed(routes, NROUTES, "/model/a%2Fb", buf, sizeof(buf));
	is_str(buf, "", "no methods for a path no row accepts");

	char small[10];

	mlc_route_allowed(routes, NROUTES, "/model/abc", small, sizeof(small));
	is_str(small, "GET", "an entry that does not fit is left out whole");
	mlc_route_allowed(routes, NROUTES, "/model/abc", small, 3);
	is_str(small, "", "nothing fits in three bytes");
	strcpy(small, "untouched");
	mlc_route_allowed(routes, NROUTES, "/model/abc", small, 0);
	is_str(small, "untouched", "a zero-length buffer is not written");

	static const struct mlc_route similar[] = {
		{ "GETX", "/x", NULL, 0 },
		{ "GET", "/x", NULL, 0 },
		{ "GET", "/{id}", NULL, 0 },
	};

	mlc_route_allowed(similar, 3, "/x", buf, sizeof(buf));
	is_str(buf, "GETX, GET", "a method that is a prefix of another is still listed");
}

/* The Location for path?query, or "(none)". */
static void redirects(const char *path, const char *query, const char *want, const char *title)
{
	char *got = mlc_route_slash_redirect(routes, NROUTES, path, query);

	is_str(got ? got : "(none)", want, "%s", title);
	free(got);
}

static void test_slash_redirect(void)
{
	redirects("/model/all/", NULL, "/model/all", "a trailing slash on a literal path goes");
	redirects("/model/add/", "", "/model/add", "an empty query string adds no '?'");
	redirects("/model/all/", "skip=1&limit=2", "/model/all?skip=1&limit=2", "the query string is kept");
	redirects("/model/all///", NULL, "/model/all", "every trailing slash goes, as in Starlette");
	redirects("/model/abc/", NULL, "/model/abc", "a path ending in a capture");
	redirects("/model/m-1/files/model/", "version=2", "/model/m-1/files/model?version=2",
		  "two captures and a query");
	redirects("/model/a%20b/", NULL, "/model/a%20b", "escapes in the path stay as sent");
	redirects("/model/all", NULL, "(none)", "a path that has a route is not redirected");
	redirects("/model/all", "x=1", "(none)", "nor with a query");
	redirects("/model/add", NULL, "(none)", "a path with a route for another method is not redirected");
	redirects("/nope/", NULL, "(none)", "a path without a route either way");
	redirects("/", NULL, "(none)", "the root is never redirected");
	redirects("//", NULL, "(none)", "'//' strips to nothing");
	redirects("///", "a=b", "(none)", "'///' strips to nothing");
	redirects("//model/all/", NULL, "(none)", "a leading '//' matches no route: never a "
		  "protocol-relative Location");
	redirects("//evil.example/", NULL, "(none)", "no redirect to another host");
	redirects("/model//", NULL, "(none)", "'/model//' strips to '/model', which has no route");
	redirects("/model/a%2Fb/", NULL, "(none)", "a capture that matches no row stays a 404");
	redirects("/model/../", NULL, "(none)", "'..' as a capture stays a 404");
	redirects("model/all/", NULL, "(none)", "a path without the leading slash");
	redirects("", NULL, "(none)", "an empty path");
	redirects(NULL, "a=b", "(none)", "a NULL path");
	redirects("/model/all/", "a=\r\nSet-Cookie: x", "/model/all?a=%0D%0ASet-Cookie:%20x",
		  "CR, LF and spaces in the query are encoded: the Location is one header line");
	redirects("/model/a\"b<>\\^`{|}/", "q=\"<>#", "/model/a%22b%3C%3E%5C%5E%60%7B%7C%7D?q=%22%3C%3E%23",
		  "quotes, angle brackets and other unsafe bytes are encoded");
	redirects("/model/caf\xc3\xa9\x7f\x01/", "v=\xff", "/model/caf%C3%A9%7F%01?v=%FF",
		  "bytes outside printable ASCII are encoded");
	redirects("/model/x/", "a=1&b=%2F&c=?d/e;f:g@h!$'()*+,~", "/model/x?a=1&b=%2F&c=?d/e;f:g@h!$'()*+,~",
		  "characters a query may hold stay as they are");

	size_t n = 100000;
	char *p = malloc(n + 16), *q = malloc(3 * n + 1), *want = malloc(3 * n + 32), *got;

	strcpy(p, "/model/all/");
	memset(q, '\n', n);
	q[n] = '\0';
	strcpy(want, "/model/all?");
	for (size_t i = 0; i < n; i++)
		strcat(want + 11 + 3 * i, "%0A");
	got = mlc_route_slash_redirect(routes, NROUTES, p, q);
	ok(got && !strcmp(got, want), "a long query string is encoded whole (%zu bytes)", got ? strlen(got) : 0);
	free(got);
	memset(p, '/', n);
	p[n] = '\0';
	redirects(p, NULL, "(none)", "100000 slashes");
	free(p);
	free(q);
	free(want);
}

/* The table itself: well-formed rows, each reachable by a path of its
 * own (no earlier row takes it), none twice, and the capture checks
 * mlc_dispatch does by flag declared on every row that has the capture. */
static void test_table(void)
{
	size_t bad_rows = 0, shadowed = 0, twice = 0, unflagged = 0;

	ok(NROUTES >= 20, "the service's table has its routes (%zu)", NROUTES);
	for (size_t i = 0; i < NROUTES; i++) {
		const struct mlc_route *r = &routes[i];
		char path[256], want[300];
		const char *p;
		size_t o = 0;
		struct mlc_route_match m;
		int model = strstr(r->pattern, "{model_id}") != NULL;
		int dep = strstr(r->pattern, "{deployment_id}") != NULL;

		if (!r->method || !*r->method || strspn(r->method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") !=
		    strlen(r->method) || r->pattern[0] != '/' || !r->handler) {
			diag("row %zu is not well-formed", i);
			bad_rows++;
			continue;
		}
		/* The pattern with each capture replaced by a plain value. */
		for (p = r->pattern; *p && o + 8 < sizeof(path);) {
			if (*p == '{') {
				memcpy(path + o, "v1", 2);
				o += 2;
				p = strchr(p, '}');
				p = p ? p + 1 : "";
			} else {
				path[o++] = *p++;
			}
		}
		path[o] = '\0';
		snprintf(want, sizeof(want), "%s %s", r->method, r->pattern);
		if (strcmp(lookup(r->method, path, &m), want)) {
			diag("%s %s reaches %s, not row %zu (%s)", r->method, path,
			     lookup(r->method, path, &m), i, want);
			shadowed++;
		}
		for (size_t j = 0; j < i; j++) {
			if (!strcmp(routes[j].method, r->method) && !strcmp(routes[j].pattern, r->pattern)) {
				diag("%s is in the table twice", want);
				twice++;
			}
		}
		if (model != !!(r->flags & MLC_R_MODEL_ID) || dep != !!(r->flags & MLC_R_DEPLOYMENT_ID)) {
			diag("%s: its flags do not declare the id check of its capture", want);
			unflagged++;
		}
	}
	is_int(bad_rows, 0, "every row has a method, a pattern and a handler");
	is_int(shadowed, 0, "every row is reached by a path of its own (no earlier row shadows it)");
	is_int(twice, 0, "no method and pattern is in the table twice");
	is_int(unflagged, 0, "every {model_id} and {deployment_id} row declares its id check, "
	       "and no other row does");
}

/* Shapes the service's table lacks. */
static void test_shapes(void)
{
	static const struct mlc_route rooted[] = {
		{ "GET", "/", NULL, 0 },
		{ "GET", "/{a}/{b}/{c}/{d}", NULL, 0 },
	};
	struct mlc_route_match m;
	char *to;

	ok(mlc_route_match(rooted, 2, "GET", "/", &m) == 0 && m.route == &rooted[0],
	   "a root route matches '/'");
	ok(mlc_route_match(rooted, 2, "GET", "//", &m) == -1 && !m.path_matched,
	   "but not '//'");
	ok(mlc_route_match(rooted, 2, "GET", "/x", &m) == -1, "nor '/x'");
	to = mlc_route_slash_redirect(rooted, 2, "//", NULL);
	ok(to == NULL, "'//' is not redirected to the root route");
	free(to);
	ok(mlc_route_match(rooted, 2, "GET", "/a/b/c/d", &m) == 0 && m.nparams == 4 &&
	   !strcmp(mlc_route_param(&m, "d"), "d"), "a row with %d captures fills them all",
	   MLC_ROUTE_MAX_PARAMS);
}

int main(void)
{
	routes = mlc_routes(&NROUTES);
	test_table();
	test_shapes();
	test_status();
	test_order();
	test_captures();
	test_hostile();
	test_lengths();
	test_allowed();
	test_slash_redirect();
	return done_testing();
}
