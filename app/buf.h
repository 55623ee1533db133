/*
 * buf.h - a growing string with a hard cap, for text the service
 * assembles from pieces: the text of SQL statements whose shape depends
 * on the request (never its values: those stay statement parameters),
 * response heads, and the /metrics page.
 *
 *	struct mlc_buf b = MLC_BUF_INIT(4096);
 *
 *	mlc_buf_puts(&b, "UPDATE models SET ");
 *	mlc_buf_appendf(&b, "%s = ?, ", col);
 *	if (b.failed)
 *		... the text would have passed the cap: nothing of it is usable
 *	use(mlc_buf_str(&b));
 *	mlc_buf_release(&b);
 *
 * An append that would take the text past max bytes changes nothing,
 * marks the buffer failed and returns -1; every later append fails too,
 * until mlc_buf_reset.  So a chain of appends is checked once at its end.
 * Memory comes from mlc_xrealloc (out of memory stops the worker).
 */
#ifndef MLC_BUF_H
#define MLC_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct mlc_buf {
	char *s;	/* NUL-terminated when not NULL; NULL before the first append */
	size_t len;	/* bytes of text, without the NUL */
	size_t alloc;	/* bytes allocated at s */
	size_t max;	/* the most text it may hold (0: MLC_BUF_MAX) */
	int failed;	/* an append was refused: the text is incomplete */
};

#define MLC_BUF_MAX ((size_t)1 << 30)
#define MLC_BUF_INIT(max) { NULL, 0, 0, (max), 0 }

/* Make room for extra more bytes of text (and the NUL); -1 past max. */
int mlc_buf_reserve(struct mlc_buf *b, size_t extra);
/* Append n bytes of s (which may hold NULs); 0, or -1 as said above. */
int mlc_buf_append(struct mlc_buf *b, const char *s, size_t n);
/* Append the string s. */
int mlc_buf_puts(struct mlc_buf *b, const char *s);
/* Append printf-style text. */
int mlc_buf_appendf(struct mlc_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int mlc_buf_vappendf(struct mlc_buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* The text so far ("" when there is none). */
const char *mlc_buf_str(const struct mlc_buf *b);
/* Empty the text and clear failed, keeping the memory and max. */
void mlc_buf_reset(struct mlc_buf *b);
/* Cut the text back to len bytes (no more than it has) and clear failed:
 * undoes the appends made since its length was len, refused ones too. */
void mlc_buf_setlen(struct mlc_buf *b, size_t len);
/* Hand the text over (the caller frees it; "" allocated when empty) with
 * its length in *len (when not NULL); the buffer is left empty, as new.
 * NULL when the buffer failed (it is reset all the same). */
char *mlc_buf_detach(struct mlc_buf *b, size_t *len);
/* Free the memory; the buffer is empty and may be used again. */
void mlc_buf_release(struct mlc_buf *b);

#endif
