/*
 * util.c - allocation wrappers that abort on out-of-memory, the fatal-error
 * exit, and filling a struct mlc_err.
 *
 * A worker that cannot allocate a few bytes cannot answer the request in
 * any useful way either, so every allocation goes through one wrapper that
 * stops the process; the master respawns the worker.  Callers never test
 * for NULL.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlc.h"

/*
 * Record a failure for the caller: code is a hint for the handler (an HTTP
 * status, or 0), the message is a printf-style sentence, truncated to fit.
 * A NULL err means the caller does not want the details.
 */
void mlc_err_set(struct mlc_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

/*
 * Print "mlc: <message>" on stderr and abort(), so a core dump or the
 * sanitizer shows where it happened.
 */
void mlc_die(const char *fmt, ...)
{
	va_list ap;

	fputs("mlc: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	abort();
}

/* malloc(0) may return NULL on success; asking for one byte keeps "NULL
 * means out of memory" true for every wrapper below. */
void *mlc_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		mlc_die("out of memory allocating %zu bytes", n);
	return p;
}

void *mlc_xcalloc(size_t nmemb, size_t size)
{
	void *p;

	if (!nmemb || !size)
		nmemb = size = 1;
	p = calloc(nmemb, size);
	if (!p)
		mlc_die("out of memory allocating %zu x %zu bytes", nmemb, size);
	return p;
}

void *mlc_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		mlc_die("out of memory reallocating to %zu bytes", n);
	return q;
}

char *mlc_xstrdup(const char *s)
{
	return mlc_xstrndup(s, strlen(s));
}

/* Copy at most n bytes of s (stopping at a NUL) and terminate the copy. */
char *mlc_xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *d = mlc_xmalloc(len + 1);

	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}
