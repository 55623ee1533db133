/*
 * buf.c - a growing string with a hard cap (see buf.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "mlc.h"

static size_t cap_of(const struct mlc_buf *b)
{
	return b->max ? b->max : MLC_BUF_MAX;
}

static int refuse(struct mlc_buf *b)
{
	b->failed = 1;
	return -1;
}

int mlc_buf_reserve(struct mlc_buf *b, size_t extra)
{
	size_t want, grow;

	if (b->failed)
		return -1;
	/* Written so that no sum can wrap around. */
	if (extra > cap_of(b) || b->len > cap_of(b) - extra)
		return refuse(b);
	want = b->len + extra + 1;
	if (want <= b->alloc)
		return 0;
	grow = b->alloc < 64 ? 64 : b->alloc;
	while (grow < want)
		grow = grow > (SIZE_MAX >> 1) ? want : grow * 2;
	if (grow > cap_of(b) + 1)
		grow = cap_of(b) + 1;
	b->s = mlc_xrealloc(b->s, grow);
	if (!b->alloc)
		b->s[0] = '\0';
	b->alloc = grow;
	return 0;
}

int mlc_buf_append(struct mlc_buf *b, const char *s, size_t n)
{
	if (mlc_buf_reserve(b, n) < 0)
		return -1;
	if (n)
		memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
	return 0;
}

int mlc_buf_puts(struct mlc_buf *b, const char *s)
{
	return mlc_buf_append(b, s, strlen(s));
}

int mlc_buf_vappendf(struct mlc_buf *b, const char *fmt, va_list ap)
{
	va_list again;
	int n;

	if (b->failed)
		return -1;
	va_copy(again, ap);
	n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->alloc - b->len : 0, fmt, ap);
	if (n < 0) {
		va_end(again);
		if (b->s)
			b->s[b->len] = '\0';
		return refuse(b);
	}
	if (b->s && (size_t)n < b->alloc - b->len) {
		/* It fitted: but not past max, which may be below alloc. */
		if ((size_t)n > cap_of(b) - b->len) {
			va_end(again);
			b->s[b->len] = '\0';
			return refuse(b);
		}
		b->len += (size_t)n;
		va_end(again);
		return 0;
	}
	if (mlc_buf_reserve(b, (size_t)n) < 0) {
		va_end(again);
		if (b->s)
			b->s[b->len] = '\0';
		return -1;
	}
	vsnprintf(b->s + b->len, b->alloc - b->len, fmt, again);
	va_end(again);
	b->len += (size_t)n;
	return 0;
}

int mlc_buf_appendf(struct mlc_buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = mlc_buf_vappendf(b, fmt, ap);
	va_end(ap);
	return rc;
}

const char *mlc_buf_str(const struct mlc_buf *b)
{
	return b->s ? b->s : "";
}

void mlc_buf_reset(struct mlc_buf *b)
{
	b->len = 0;
	b->failed = 0;
	if (b->s)
		b->s[0] = '\0';
}

void mlc_buf_setlen(struct mlc_buf *b, size_t len)
{
	if (len < b->len) {
		b->len = len;
		b->s[len] = '\0';
	}
	b->failed = 0;
}

char *mlc_buf_detach(struct mlc_buf *b, size_t *len)
{
	char *s = b->s;
	int failed = b->failed;

	if (len)
		*len = failed ? 0 : b->len;
	b->s = NULL;
	b->len = b->alloc = 0;
	b->failed = 0;
	if (failed) {
		free(s);
		return NULL;
	}
	return s ? s : mlc_xstrdup("");
}

void mlc_buf_release(struct mlc_buf *b)
{
	free(b->s);
	b->s = NULL;
	b->len = b->alloc = 0;
	b->failed = 0;
}
