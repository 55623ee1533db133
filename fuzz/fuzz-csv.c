/*
 * fuzz-csv.c - libFuzzer target for the streaming CSV check.
 *
 * Byte 0 seeds the piece sizes; the rest is the file.  It is checked
 * once whole and once in pieces of pseudo-random sizes (with empty feeds
 * in between); the verdict, message and counts must agree, and a message
 * must name a line, or the target aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pieces.h"

#include "csvcheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct verdict {
	int rc;
	unsigned long rows;
	unsigned columns;
	char msg[256];
};

/* Check s; piece sizes come from seed, or none (whole) when seed < 0. */
static void check(const char *s, size_t len, int seed, struct verdict *v)
{
	struct mlc_csv c;
	struct pieces cut;
	size_t off = 0;
	int rc = 0;

	mlc_csv_init(&c);
	pieces_init(&cut, seed);
	while (!rc && off < len) {
		size_t n = pieces_next(&cut, len - off);

		rc = mlc_csv_feed(&c, s + off, n);
		off += n;
	}
	v->rc = rc ? rc : mlc_csv_finish(&c);
	if (v->rc && (mlc_csv_feed(&c, "a", 1) != -1 || mlc_csv_finish(&c) != -1))
		abort();	/* a failure is final */
	v->rows = c.rows;
	v->columns = c.columns;
	strcpy(v->msg, mlc_csv_error(&c));
}

/* A refusal names a line or the whole file; success says nothing. */
static int message_fits(const struct verdict *v)
{
	if (!v->rc)
		return v->msg[0] == '\0';
	return !strncmp(v->msg, "line ", 5) || !strncmp(v->msg, "the file ", 9);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct verdict whole, pieces;

	if (size < 1)
		return 0;
	check((const char *)data + 1, size - 1, -1, &whole);
	check((const char *)data + 1, size - 1, data[0], &pieces);
	if (whole.rc != pieces.rc || whole.rows != pieces.rows ||
	    whole.columns != pieces.columns || strcmp(whole.msg, pieces.msg))
		abort();
	if (!message_fits(&whole))
		abort();
	if (!whole.rc && (!whole.columns || whole.columns > MLC_CSV_MAX_COLUMNS))
		abort();
	return 0;
}
