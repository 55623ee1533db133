/*
 * fuzz-cors.c - libFuzzer target for mlc_cors_check and
 * mlc_cors_allow_headers.  The first input byte sets the size of the
 * Allow-Headers buffer; the rest is cut at the first NUL byte into the
 * configured list and the Origin header, and the whole rest is also the
 * Access-Control-Request-Headers value.  Each answer is checked against
 * a second, simpler reading of the same rules.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The list's entries, the slow way: does one equal "*", does one equal
 * origin (ignoring case and an entry's one trailing '/')? */
static void reference(const char *list, const char *origin, int *entries, int *star, int *match)
{
	char *copy = strdup(list), *save = NULL;

	*entries = *star = *match = 0;
	for (char *e = strtok_r(copy, " \t,", &save); e; e = strtok_r(NULL, " \t,", &save)) {
		size_t n = strlen(e);

		(*entries)++;
		if (!strcmp(e, "*"))
			*star = 1;
		if (n > 1 && e[n - 1] == '/')
			e[--n] = '\0';
		if (!strcasecmp(e, origin))
			*match = 1;
	}
	free(copy);
}

static int echoable(const char *o)
{
	size_t n = strlen(o);

	if (!n || n > MLC_CORS_MAX_ORIGIN)
		return 0;
	for (; *o; o++)
		if ((unsigned char)*o <= ' ' || (unsigned char)*o >= 0x7f || *o == ',')
			return 0;
	return 1;
}

static void check_origin(const char *list, const char *origin)
{
	int entries, star, match;
	enum mlc_cors got = mlc_cors_check(list, origin), want;

	reference(list, origin, &entries, &star, &match);
	if (!*origin || !entries)
		want = MLC_CORS_OFF;
	else if (star)
		want = MLC_CORS_ANY;
	else if (match && echoable(origin))
		want = MLC_CORS_ORIGIN;
	else
		want = MLC_CORS_DENIED;
	if (got != want)
		abort();
	if (mlc_cors_check(NULL, origin) != MLC_CORS_OFF || mlc_cors_check(list, NULL) != MLC_CORS_OFF)
		abort();
}

static int tchar(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The answer stays in its buffer and is a ", "-list of distinct tokens. */
static void check_headers(const char *requested, size_t cap)
{
	char *buf = malloc(cap + 1), *copy, *save = NULL;
	size_t n = 0;
	char names[512][MLC_CORS_MAX_HEADER_NAME + 1];

	memset(buf, 'x', cap + 1);
	mlc_cors_allow_headers(requested, buf, cap);
	if (buf[cap] != 'x')
		abort();
	if (!cap) {
		free(buf);
		return;
	}
	if (strnlen(buf, cap) >= cap)
		abort();
	if (cap >= 28 && strncmp(buf, "Authorization, Content-Type", 27))
		abort();
	copy = strdup(buf);
	for (char *e = strtok_r(copy, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
		if (e != copy && *e++ != ' ')
			abort();
		if (!*e || strlen(e) > MLC_CORS_MAX_HEADER_NAME || n >= 512)
			abort();
		for (const char *c = e; *c; c++)
			if (!tchar((unsigned char)*c))
				abort();
		for (size_t i = 0; i < n; i++)
			if (!strcasecmp(names[i], e))
				abort();
		strcpy(names[n++], e);
	}
	free(copy);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text, *origin;
	size_t cap;

	if (!size)
		return 0;
	cap = data[0] < 128 ? data[0] : 1024;
	text = malloc(size);
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	check_headers(text, cap);
	origin = text + strlen(text);
	if (origin < text + size - 1)
		origin++;
	check_origin(text, origin);
	free(text);
	return 0;
}
