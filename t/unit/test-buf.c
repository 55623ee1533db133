/*
 * test-buf.c - the capped string builder (app/buf.c): appends of every
 * kind, hostile lengths at and past the cap (one byte either side, sizes
 * that would wrap a size_t), a failure that sticks until reset, detach.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "tap.h"

int main(void)
{
	struct mlc_buf b = MLC_BUF_INIT(16);
	char big[100], *s;
	size_t len;
	int i;

	is_str(mlc_buf_str(&b), "", "a new buffer reads as the empty string");
	s = mlc_buf_detach(&b, &len);
	ok(s && !strcmp(s, "") && len == 0, "detaching a new buffer gives an allocated \"\"");
	free(s);

	ok(mlc_buf_puts(&b, "SELECT ") == 0, "puts");
	ok(mlc_buf_appendf(&b, "%d, %s", 1, "?") == 0, "appendf");
	is_str(mlc_buf_str(&b), "SELECT 1, ?", "the text");
	is_int(b.len, 11, "its length");
	ok(mlc_buf_append(&b, "abcde", 5) == 0 && b.len == 16, "exactly to the cap fits");
	is_str(mlc_buf_str(&b), "SELECT 1, ?abcde", "the text at the cap");
	ok(mlc_buf_append(&b, "x", 1) < 0 && b.failed, "one byte past the cap is refused");
	is_str(mlc_buf_str(&b), "SELECT 1, ?abcde", "a refused append changes nothing");
	ok(mlc_buf_puts(&b, "") < 0, "after a failure every append fails, even an empty one");
	ok(mlc_buf_detach(&b, &len) == NULL && len == 0, "a failed buffer detaches as NULL");
	ok(!b.failed && b.len == 0 && !b.s, "and is left new");

	/* appendf past the cap, in a buffer whose allocation is larger than
	 * the cap allows (the text must still stop at max) */
	b.max = 10;
	ok(mlc_buf_appendf(&b, "%s", "0123456789") == 0, "appendf to exactly the cap");
	ok(mlc_buf_appendf(&b, "%c", 'x') < 0, "appendf one byte past the cap is refused");
	is_str(mlc_buf_str(&b), "0123456789", "and leaves the text as it was");
	mlc_buf_reset(&b);
	ok(!b.failed && b.len == 0 && !strcmp(mlc_buf_str(&b), ""), "reset clears the failure");
	memset(big, 'y', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ok(mlc_buf_appendf(&b, "%s", big) < 0, "a long appendf into a small cap is refused");
	is_str(mlc_buf_str(&b), "", "without leaving a piece of it");
	mlc_buf_reset(&b);

	/* setlen undoes appends, a refused one included */
	ok(mlc_buf_puts(&b, "abc") == 0 && mlc_buf_puts(&b, "0123456789") < 0, "a refused append");
	mlc_buf_setlen(&b, 2);
	ok(!b.failed && b.len == 2 && !strcmp(mlc_buf_str(&b), "ab"), "setlen cuts and clears it");
	mlc_buf_setlen(&b, 99);
	ok(b.len == 2 && !strcmp(mlc_buf_str(&b), "ab"), "setlen never lengthens");
	mlc_buf_reset(&b);

	/* lengths that would wrap size_t */
	ok(mlc_buf_reserve(&b, SIZE_MAX) < 0, "reserving SIZE_MAX is refused");
	mlc_buf_reset(&b);
	ok(mlc_buf_puts(&b, "ab") == 0 && mlc_buf_reserve(&b, SIZE_MAX - 1) < 0,
	   "reserving SIZE_MAX - 1 after text is refused (no wrap-around)");
	mlc_buf_reset(&b);
	ok(mlc_buf_append(&b, "x", SIZE_MAX) < 0, "appending SIZE_MAX bytes is refused unread");
	mlc_buf_release(&b);

	/* growth: many small appends, the default cap */
	{
		struct mlc_buf g = MLC_BUF_INIT(0);

		for (i = 0; i < 10000; i++)
			mlc_buf_appendf(&g, "%d,", i % 10);
		ok(!g.failed && g.len == 20000, "10000 appends grow the buffer (len %zu)", g.len);
		ok(g.s[g.len] == '\0' && !strncmp(g.s + g.len - 4, "8,9,", 4), "and keep its end");
		s = mlc_buf_detach(&g, &len);
		ok(s && len == 20000 && strlen(s) == 20000, "detach hands the whole text over");
		free(s);
		ok(mlc_buf_puts(&g, "again") == 0 && !strcmp(mlc_buf_str(&g), "again"),
		   "a detached buffer is usable again");
		mlc_buf_release(&g);
	}

	/* a buffer holding NUL bytes */
	{
		struct mlc_buf n = MLC_BUF_INIT(8);

		ok(mlc_buf_append(&n, "a\0b", 3) == 0 && n.len == 3 && n.s[2] == 'b',
		   "append takes bytes, NULs included");
		mlc_buf_release(&n);
	}
	return done_testing();
}
