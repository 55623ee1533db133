/*
 * jsonbuf.c - see jsonbuf.h.
 */
#include <stdlib.h>
#include <string.h>

#include "jsonbuf.h"
#include "mlc.h"

/* What a worker keeps between requests (a 100-row page of models is about
 * 70 KiB). */
#define JBUF_KEEP (256 * 1024)

void mlc_jbuf_reset(struct mlc_jbuf *b)
{
	if (b->cap > JBUF_KEEP) {
		free(b->s);
		b->s = NULL;
		b->cap = 0;
	}
	b->len = 0;
}

void mlc_jbuf_free(struct mlc_jbuf *b)
{
	free(b->s);
	b->s = NULL;
	b->len = b->cap = 0;
}

static void grow(struct mlc_jbuf *b, size_t n)
{
	size_t cap = b->cap ? b->cap : 4096;

	while (cap - b->len < n + 1)
		cap *= 2;
	b->s = mlc_xrealloc(b->s, cap);
	b->cap = cap;
}

void mlc_jbuf_put(struct mlc_jbuf *b, const char *s, size_t n)
{
	if (b->cap - b->len < n + 1)
		grow(b, n);
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

void mlc_jbuf_str(struct mlc_jbuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p, *run;
	char esc[6] = { '\\', 'u', '0', '0', 0, 0 };

	if (!s) {
		mlc_jbuf_lit(b, "null");
		return;
	}
	mlc_jbuf_lit(b, "\"");
	for (p = run = (const unsigned char *)s; *p; p++) {
		const char *rep;

		if (*p >= 0x20 && *p != '"' && *p != '\\')
			continue;
		mlc_jbuf_put(b, (const char *)run, (size_t)(p - run));
		run = p + 1;
		switch (*p) {
		case '"': rep = "\\\""; break;
		case '\\': rep = "\\\\"; break;
		case '\b': rep = "\\b"; break;
		case '\n': rep = "\\n"; break;
		case '\r': rep = "\\r"; break;
		case '\t': rep = "\\t"; break;
		case '\f': rep = "\\f"; break;
		default:
			esc[4] = hex[*p >> 4];
			esc[5] = hex[*p & 15];
			mlc_jbuf_put(b, esc, 6);
			continue;
		}
		mlc_jbuf_put(b, rep, 2);
	}
	mlc_jbuf_put(b, (const char *)run, (size_t)(p - run));
	mlc_jbuf_lit(b, "\"");
}

void mlc_jbuf_raw(struct mlc_jbuf *b, const char *s)
{
	if (!s)
		mlc_jbuf_lit(b, "null");
	else
		mlc_jbuf_put(b, s, strlen(s));
}

/* As mlc_iso_time (stamp.c): at most 41 characters of the value, the
 * space before the time made a 'T', then the UTC offset. */
void mlc_jbuf_time(struct mlc_jbuf *b, const char *dt)
{
	char buf[48];
	size_t n;

	if (!dt) {
		mlc_jbuf_lit(b, "null");
		return;
	}
	n = strnlen(dt, sizeof(buf) - sizeof("+00:00"));
	memcpy(buf, dt, n);
	if (n > 10 && buf[10] == ' ')
		buf[10] = 'T';
	memcpy(buf + n, "+00:00", sizeof("+00:00"));
	mlc_jbuf_str(b, buf);
}
