/*
 * test-jsonbuf.c - the rows the hot routes write as text must be the
 * bytes json-c printed for them before (JSON_C_TO_STRING_PLAIN |
 * JSON_C_TO_STRING_NOSLASHESCAPE): every byte value in a string, null,
 * stored JSON echoed, timestamps, and buffers that grow.
 */
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "jsonbuf.h"
#include "jsonutil.h"
#include "stamp.h"
#include "tap.h"

#define FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* json-c's text of o (which it takes). */
static char *jsonc(json_object *o)
{
	char *s = strdup(o ? json_object_to_json_string_ext(o, FLAGS) : "null");

	json_object_put(o);
	return s;
}

static void same_str(const char *s, const char *title)
{
	struct mlc_jbuf b = { 0 };
	char *want = jsonc(s ? json_object_new_string(s) : NULL);

	mlc_jbuf_str(&b, s);
	is_str(b.s, want, "%s", title);
	free(want);
	mlc_jbuf_free(&b);
}

static void same_time(const char *dt)
{
	struct mlc_jbuf b = { 0 };
	char *want = jsonc(mlc_iso_time(dt));

	mlc_jbuf_time(&b, dt);
	is_str(b.s, want, "time '%s'", dt ? dt : "(null)");
	free(want);
	mlc_jbuf_free(&b);
}

int main(void)
{
	struct mlc_jbuf b = { 0 };
	char s[8], *want, big[3000];
	int c, bad = 0;
	size_t i;

	/* Every byte value between two letters, one at a time. */
	for (c = 1; c < 256; c++) {
		struct mlc_jbuf one = { 0 };

		snprintf(s, sizeof(s), "a%cb", c);
		want = jsonc(json_object_new_string(s));
		mlc_jbuf_str(&one, s);
		if (strcmp(one.s, want)) {
			bad++;
			diag("byte 0x%02x: got %s, json-c %s", c, one.s, want);
		}
		free(want);
		mlc_jbuf_free(&one);
	}
	ok(!bad, "every byte value is written as json-c writes it");
	same_str("", "the empty string");
	same_str(NULL, "NULL is null");
	same_str("\"\\/\b\f\n\r\t\x01\x1f\x7f", "quotes, backslash, slash and control characters");
	same_str("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "UTF-8 passes through");
	same_str("\"leading and trailing\\", "escapes at both ends");
	for (i = 0; i < sizeof(big) - 1; i++)
		big[i] = (char)(i % 7 == 0 ? '"' : 'a' + i % 26);
	big[sizeof(big) - 1] = '\0';
	same_str(big, "a long string with many escapes");

	same_time("2026-11-27 05:32:26.123456");
	same_time("2026-11-27 05:32:26");
	same_time("2026-11-27");
	same_time("");
	same_time(NULL);
	same_time("2026-11-27 05:32:26.123456789012345678901234567890");

	mlc_jbuf_raw(&b, "[{\"a\": 0.89}]");
	mlc_jbuf_raw(&b, NULL);
	is_str(b.s, "[{\"a\": 0.89}]null", "stored JSON is echoed, NULL is null");

	/* Growing past the first allocation keeps every byte. */
	mlc_jbuf_reset(&b);
	for (i = 0; i < 20000; i++)
		mlc_jbuf_lit(&b, "0123456789");
	ok(b.len == 200000 && b.s[199999] == '9' && b.s[200000] == '\0' &&
	   !memcmp(b.s + 123450, "0123456789", 10), "200,000 bytes appended in pieces");
	mlc_jbuf_reset(&b);
	ok(b.len == 0, "reset empties the buffer");
	mlc_jbuf_lit(&b, "x");
	is_str(b.s, "x", "a reset buffer is written again");
	mlc_jbuf_free(&b);
	return done_testing();
}
