/*
 * fuzz-router.c - libFuzzer target for mlc_route_match, mlc_route_param,
 * mlc_route_allowed and mlc_route_slash_redirect.  The first input byte
 * picks the method and the size of the Allow buffer; the rest, cut at a
 * NUL byte, is the path, and what follows that NUL the query string.
 */
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct mlc_route routes[] = {
	{ "GET", "/", NULL, 0, 0 },
	{ "GET", "/health", NULL, 0, 0 },
	{ "GET", "/model/all", NULL, 0, 0 },
	{ "GET", "/model/getkind/{modelkind}", NULL, 0, 0 },
	{ "POST", "/model/add", NULL, 0, 0 },
	{ "GET", "/model/{model_id}", NULL, 0, 0 },
	{ "PATCH", "/model/{model_id}", NULL, 0, 0 },
	{ "DELETE", "/model/{model_id}", NULL, 0, 0 },
	{ "POST", "/model/{model_id}/upload", NULL, 0, 0 },
	{ "GET", "/model/{model_id}/files/{kind}", NULL, 0, 0 },
	{ "GET", "/deployment/get/status/{deployment_id}", NULL, 0, 0 },
	{ "POST", "/deployment/{deployment_id}/predict", NULL, 0, 0 },
	{ "DELETE", "/deployment/{deployment_id}", NULL, 0, 0 },
	{ "GET", "/{a}/{b}/{c}/{d}", NULL, 0, 0 },
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

static const char *const methods[] = { "GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "get", "" };

/* Is method one of the ", "-separated entries of list?  Checked another
 * way than the router does it, so that the two can disagree. */
static int listed(const char *list, const char *method)
{
	char padded[1024], needle[96];

	snprintf(padded, sizeof(padded), ", %s,", list);
	snprintf(needle, sizeof(needle), ", %s,", method);
	return strstr(padded, needle) != NULL;
}

/* A match hands out only well-formed captures, all findable by name. */
static void check_match(const struct mlc_route_match *m, const char *method)
{
	if (!m->route || strcmp(m->route->method, method) || !m->path_matched)
		abort();
	for (size_t i = 0; i < m->nparams; i++) {
		const char *v = m->values[i];
		char name[64];

		if (strlen(v) >= MLC_ROUTE_MAX_PARAM_LEN || !*v || strchr(v, '/') ||
		    !strcmp(v, ".") || !strcmp(v, ".."))
			abort();
		if (m->name_lens[i] >= sizeof(name))
			abort();
		memcpy(name, m->names[i], m->name_lens[i]);
		name[m->name_lens[i]] = '\0';
		if (!mlc_route_param(m, name))
			abort();
	}
}

/* The Allow list agrees with the match, and a short buffer stays
 * terminated inside its bounds. */
static void check_allowed(const struct mlc_route_match *m, const char *method,
			  const char *path, size_t small)
{
	char buf[256];
	char tiny[16];

	mlc_route_allowed(routes, NROUTES, path, buf, sizeof(buf));
	if (!*buf != !m->path_matched)
		abort();
	if (listed(buf, method) != (m->route != NULL) && *method)
		abort();
	memset(tiny, 'x', sizeof(tiny));
	mlc_route_allowed(routes, NROUTES, path, tiny, small);
	if (small && strnlen(tiny, small) >= small)
		abort();
	if (small < sizeof(tiny) && tiny[small] != 'x')
		abort();
}

/* A redirect goes only to a path some row matches, from a path ending in
 * '/', and its Location is one clean header value. */
static void check_redirect(const char *path, const char *query)
{
	char *loc = mlc_route_slash_redirect(routes, NROUTES, path, query), *q, allow[256];
	size_t plen = strlen(path);

	if (!loc)
		return;
	if (!plen || path[plen - 1] != '/' || loc[0] != '/' || loc[1] == '/' || loc[1] == '\0')
		abort();
	for (const char *c = loc; *c; c++)
		if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f || strchr("\"<>\\^`{|}#", *c))
			abort();
	q = strchr(loc, '?');
	if (q) {
		if (!*query)
			abort();
		*q = '\0';
	}
	if (!strcmp(loc, path) || loc[strlen(loc) - 1] == '/')
		abort();
	mlc_route_allowed(routes, NROUTES, loc, allow, sizeof(allow));
	if (!*allow)
		abort();
	free(loc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mlc_route_match m;
	const char *method;
	size_t small;
	char *path;

	if (!size)
		return 0;
	method = methods[data[0] % (sizeof(methods) / sizeof(methods[0]))];
	small = (data[0] >> 3) % 16;
	path = malloc(size);
	memcpy(path, data + 1, size - 1);
	path[size - 1] = '\0';
	if (mlc_route_match(routes, NROUTES, method, path, &m) == 0)
		check_match(&m, method);
	else if (m.route || m.nparams)
		abort();
	check_allowed(&m, method, path, small);
	check_redirect(path, strlen(path) + 1 < size ? path + strlen(path) + 1 : "");
	free(path);
	return 0;
}
