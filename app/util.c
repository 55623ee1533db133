/*
 * util.c - allocation wrappers that abort on out-of-memory, the fatal-error
 * exit, and filling a struct mlc_err.
 *
 * A worker that cannot allocate a few bytes cannot answer the request in
 * any useful way either, so every allocation goes through one wrapper that
 * stops the process; the master respawns the worker.  Callers never test
 * for NULL.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlc.h"

/*
 * Record a failure for the caller: code is a hint for the handler (an HTTP
 * status, or 0), the message is a printf-style sentence, truncated to fit
 * (never inside a character).  A NULL err means the caller does not want
 * the details.  Returns -1, for "return mlc_error(err, ...)".
 */
static void err_vset(struct mlc_err *err, int code, const char *fmt, va_list ap)
{
	err->code = code;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	mlc_utf8_trim(err->msg);
}

int mlc_err_error(struct mlc_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return -1;
	va_start(ap, fmt);
	err_vset(err, code, fmt, ap);
	va_end(ap);
	return -1;
}

int mlc_errno_status(int e)
{
	return e == ENOSPC || e == EDQUOT ? 507 : 500;
}

void mlc_errno_append(char *msg, size_t cap, int e)
{
	size_t n = strlen(msg);

	if (n < cap)
		snprintf(msg + n, cap - n, ": %s", strerror(e ? e : EIO));
	mlc_utf8_trim(msg);
}

int mlc_err_error_errno(struct mlc_err *err, const char *fmt, ...)
{
	int e = errno;
	va_list ap;

	if (!err)
		return -1;
	va_start(ap, fmt);
	err_vset(err, mlc_errno_status(e), fmt, ap);
	va_end(ap);
	mlc_errno_append(err->msg, sizeof(err->msg), e);
	errno = e;
	return -1;
}

/* Valid second bytes after lead byte c (Unicode table 3-7); the third
 * and fourth are always 0x80..0xBF. */
static int second_ok(unsigned char c, unsigned char b)
{
	switch (c) {
	case 0xE0: return b >= 0xA0 && b <= 0xBF;	/* no overlong 3-byte forms */
	case 0xED: return b >= 0x80 && b <= 0x9F;	/* no surrogates */
	case 0xF0: return b >= 0x90 && b <= 0xBF;	/* no overlong 4-byte forms */
	case 0xF4: return b >= 0x80 && b <= 0x8F;	/* nothing above U+10FFFF */
	default: return b >= 0x80 && b <= 0xBF;
	}
}

size_t mlc_utf8_seq(const char *s, size_t avail, size_t *bad)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n, i;

	if (u[0] < 0x80)
		return 1;
	if (u[0] >= 0xC2 && u[0] <= 0xDF)
		n = 2;
	else if (u[0] >= 0xE0 && u[0] <= 0xEF)
		n = 3;
	else if (u[0] >= 0xF0 && u[0] <= 0xF4)
		n = 4;
	else {
		*bad = 0;	/* a continuation byte, C0, C1 or F5..FF */
		return 0;
	}
	for (i = 1; i < n; i++) {
		if (i >= avail) {
			*bad = avail;
			return 0;
		}
		if (i == 1 ? !second_ok(u[0], u[1]) : (u[i] & 0xC0) != 0x80) {
			*bad = i;
			return 0;
		}
	}
	return n;
}

size_t mlc_utf8_check(const char *s, size_t len)
{
	size_t i = 0, n, bad;

	while (i < len) {
		if (!(n = mlc_utf8_seq(s + i, len - i, &bad)))
			return bad < len - i ? i + bad : i;	/* cut short: its first byte */
		i += n;
	}
	return len;
}

void mlc_utf8_trim(char *s)
{
	size_t len = strlen(s), start = len, bad;

	/* Back to the start of the last sequence (at most 3 continuation
	 * bytes), then drop it unless it is complete. */
	while (start > 0 && len - start < 4 && ((unsigned char)s[start - 1] & 0xC0) == 0x80)
		start--;
	if (start > 0 && (unsigned char)s[start - 1] >= 0xC0)
		start--;
	else if (start == len)
		return;
	if (!mlc_utf8_seq(s + start, len - start, &bad) && bad == len - start)
		s[start] = '\0';
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
