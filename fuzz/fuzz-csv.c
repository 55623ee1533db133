/*
 * fuzz-csv.c - libFuzzer target for the streaming CSV check.
 *
 * Byte 0 seeds the piece sizes; the rest is the file.  It is checked
 * once whole and once in pieces of pseudo-random sizes (with empty feeds
 * in between); the verdict, message and counts must agree, and a message
 * must name a line, or the target aborts.
 *
 * A file that passes is then taken the way of a predict data link: its
 * UTF-8 check, then the JSON request that carries it to the runtime,
 * which must parse strictly back to the very same bytes when the check
 * passed, and must not parse when it failed (the runtime would refuse it
 * with a confusing message).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pieces.h"

#include "csvcheck.h"
#include "jsonutil.h"

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

/* The data link path of a CSV that passed the check. */
static void check_data_link(const char *s, size_t len)
{
	char msg[256];
	int text = mlc_csv_check_utf8(s, len, msg, sizeof(msg)) == 0;
	json_object *req = json_object_new_object(), *back = NULL, *csv;
	const char *body;
	size_t blen;

	if (!text && strncmp(msg, "line ", 5))
		abort();
	/* As route-predict.c's runtime_request builds it (the check refuses NUL). */
	json_object_object_add(req, "csv", json_object_new_string(s));
	body = json_object_to_json_string_length(req, JSON_C_TO_STRING_PLAIN, &blen);
	if (mlc_json_parse(body, blen, &back, msg, sizeof(msg)) < 0) {
		if (text) {
			fprintf(stderr, "a UTF-8 CSV gave a request that does not parse: %s\n", msg);
			abort();
		}
	} else {
		if (!text)
			abort();	/* invalid UTF-8 went through to the runtime */
		if (!json_object_object_get_ex(back, "csv", &csv) ||
		    (size_t)json_object_get_string_len(csv) != len ||
		    memcmp(json_object_get_string(csv), s, len))
			abort();	/* the runtime would read other bytes */
	}
	json_object_put(back);
	json_object_put(req);
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
	if (!whole.rc) {
		char *s = malloc(size);	/* NUL-terminated, as the fetched body is */

		memcpy(s, data + 1, size - 1);
		s[size - 1] = '\0';
		check_data_link(s, size - 1);
		free(s);
	}
	return 0;
}
