/*
 * test-csvcheck.c - the streaming CSV check on ordinary files (quoting,
 * line ends, a missing final newline) and on broken ones, where the
 * message must name the right line.  Each small input is also fed split
 * in two at every offset and one byte at a time, which must not change
 * the verdict, the message or the counts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csvcheck.h"
#include "tap.h"

/* A string literal that may hold NUL bytes, as pointer and length. */
#define BIN(lit) (lit), (sizeof(lit) - 1)

/* What checking one input gave. */
struct verdict {
	int rc;
	unsigned long rows;
	unsigned columns;
	char msg[256];
};

/*
 * Check s[0..len): the first split bytes as one piece, then the rest in
 * pieces of step bytes (0: all at once).  Feeding stops at the first
 * failure, as an upload handler would.
 */
static void check(const char *s, size_t len, size_t split, size_t step, struct verdict *v)
{
	struct mlc_csv c;
	size_t off = 0;
	int rc = 0;

	mlc_csv_init(&c);
	while (!rc && off < len) {
		size_t n = off < split ? split - off : step ? step : len - off;

		if (n > len - off)
			n = len - off;
		rc = mlc_csv_feed(&c, s + off, n);
		off += n;
	}
	v->rc = rc ? rc : mlc_csv_finish(&c);
	v->rows = c.rows;
	v->columns = c.columns;
	snprintf(v->msg, sizeof(v->msg), "%s", mlc_csv_error(&c));
}

static int same(const struct verdict *a, const struct verdict *b)
{
	return a->rc == b->rc && a->rows == b->rows && a->columns == b->columns &&
	       !strcmp(a->msg, b->msg);
}

/* Check s whole into *whole; returns how many splits disagree with it. */
static int split_mismatches(const char *s, size_t len, struct verdict *whole)
{
	struct verdict v;
	int bad = 0;

	check(s, len, 0, 0, whole);
	for (size_t k = 0; k <= len + 1; k++) {
		if (k <= len)
			check(s, len, k, 0, &v);
		else
			check(s, len, 0, 1, &v);
		if (!same(&v, whole) && !bad++)
			diag("split at %zu gives rc %d, %lu rows, %u columns, message '%s'",
			     k, v.rc, v.rows, v.columns, v.msg);
	}
	return bad;
}

/* s is valid CSV with this many data rows and columns, however split. */
static void valid(const char *title, const char *s, unsigned long rows, unsigned columns)
{
	struct verdict v;
	int bad = split_mismatches(s, strlen(s), &v);

	if (!ok(v.rc == 0, "%s: accepted", title))
		diag("message: %s", v.msg);
	ok(v.rows == rows && v.columns == columns, "%s: %lu rows of %u columns", title, rows, columns);
	if (v.rows != rows || v.columns != columns)
		diag("got %lu rows of %u columns", v.rows, v.columns);
	ok(!bad, "%s: same verdict split at each offset and byte by byte", title);
}

/* s[0..len) is refused with the message want, however split. */
static void invalid_n(const char *title, const char *s, size_t len, const char *want)
{
	struct verdict v;
	int bad = split_mismatches(s, len, &v);

	ok(v.rc == -1, "%s: refused", title);
	is_str(v.msg, want, "%s: message", title);
	ok(!bad, "%s: same message split at each offset and byte by byte", title);
}

static void invalid(const char *title, const char *s, const char *want)
{
	invalid_n(title, s, strlen(s), want);
}

static void test_valid(void)
{
	valid("a header-only file", "id,name,score\n", 0, 3);
	valid("a header-only file without a final newline", "id,name,score", 0, 3);
	valid("LF line ends", "a,b\n1,2\n3,4\n", 2, 2);
	valid("CRLF line ends", "a,b\r\n1,2\r\n3,4\r\n", 2, 2);
	valid("mixed CRLF and LF line ends", "a,b\r\n1,2\n3,4\r\n", 2, 2);
	valid("no newline after the last record", "a,b\n1,2\n3,4", 2, 2);
	valid("a single column", "x\n1\n2\n", 2, 1);
	valid("empty fields", "a,b,c\n,,\n1,,3\n", 2, 3);
	valid("a quoted empty field is a one-column record", "x\n\"\"\n", 1, 1);
	valid("commas inside quotes", "name,city\n\"Smith, J\",\"Paris, FR\"\n", 1, 2);
	valid("doubled quotes inside quotes", "q\n\"say \"\"hi\"\"\"\n\"\"\"\"\n", 2, 1);
	valid("LF and CRLF inside quotes", "a,b\n\"line1\nline2\",\"x\r\ny\"\n3,4\n", 2, 2);
	valid("a quoted field at the end without a newline", "a,b\n1,\"2\"", 1, 2);
	valid("quoted header names", "\"first name\",\"last, name\"\nA,B\n", 1, 2);
	valid("a CR inside quotes is data", "a\n\"x\ry\"\n", 1, 1);
	valid("blank lines at the end are allowed", "a,b\n1,2\n\n\r\n\n", 1, 2);
	valid("a header followed only by blank lines", "a,b\n\n\n", 0, 2);
	valid("spaces are data, not separators", "a , b\n 1 , 2 \n", 1, 2);
	/* Lenient, as Python's csv module and pandas are. */
	valid("a quote inside an unquoted field is data", "height,name\n5'11\",a\"b\"c\n", 1, 2);
	valid("a space before a quote makes the field unquoted", "a,b\n \"x\",2\n", 1, 2);
	valid("a UTF-8 byte order mark is part of the first name", "\xef\xbb\xbfid,v\n1,2\n", 1, 2);
	valid("high bytes are data", "name\ncaf\xc3\xa9\n\xff\n", 2, 1);
}

static void test_invalid(void)
{
	invalid("an empty file", "", "the file is empty");
	invalid("only blank lines", "\n\r\n\n", "the file has no header row");
	invalid("a short record", "a,b,c,d\n1,2,3,4\n5,6\n", "line 3 has 2 fields, the header has 4");
	invalid("a long record", "a,b\n1,2\n3,4\n5,6,7\n", "line 4 has 3 fields, the header has 2");
	invalid("a one-field record", "a,b\n1\n", "line 2 has 1 field, the header has 2");
	invalid("a trailing comma adds a field", "a,b\n1,2,\n", "line 2 has 3 fields, the header has 2");
	invalid("a short last record without a newline", "a,b\n1,2\n3", "line 3 has 1 field, the header has 2");
	invalid("a mismatch after a record spanning lines names the right line",
		"a,b\n\"x\ny\",2\n3\n", "line 4 has 1 field, the header has 2");
	invalid("a mismatched record spanning lines names its first line",
		"a,b\n1,2\n\"x\ny\nz\",2,3\n", "line 3 has 3 fields, the header has 2");
	invalid("an unterminated quote names the line it opened on",
		"a,b\n1,2\n3,\"x\n4,5\n6,7\n", "line 3: unterminated quoted field");
	invalid("an unterminated quote in the header", "a,\"b\n", "line 1: unterminated quoted field");
	invalid_n("a NUL byte in a field", BIN("a,b\n1,2\n3,x\0y\n"), "line 3: NUL byte");
	invalid_n("a NUL byte inside quotes", BIN("a\n\"x\0\"\n"), "line 2: NUL byte");
	invalid_n("a NUL byte in the header", BIN("a\0,b\n"), "line 1: NUL byte");
	invalid("an empty column name", "a,,c\n1,2,3\n", "line 1: empty column name in the header (column 2)");
	invalid("an empty last column name", "a,b,\n", "line 1: empty column name in the header (column 3)");
	invalid("an empty first column name", ",b\n", "line 1: empty column name in the header (column 1)");
	invalid("a quoted empty column name", "a,\"\"\n", "line 1: empty column name in the header (column 2)");
	invalid("a column name of only spaces", "a,  \t\n", "line 1: empty column name in the header (column 2)");
	invalid("a quoted column name of only spaces", "\" \",b\n",
		"line 1: empty column name in the header (column 1)");
	invalid("a blank line between records", "a,b\n1,2\n\n3,4\n", "line 3 is empty");
	invalid("a blank CRLF line between records", "a,b\r\n1,2\r\n\r\n3,4\r\n", "line 3 is empty");
	invalid("several blank lines name the first", "a,b\n1,2\n\n\n\n3,4\n", "line 3 is empty");
	invalid("a blank line before the header", "\na,b\n1,2\n", "line 1 is empty");
	invalid("a blank line after the header", "a,b\n\n1,2\n", "line 2 is empty");
	invalid("text after a closing quote", "a,b\n\"x\"y,2\n", "line 2: text after the closing quote of field 1");
	invalid("text after a closing quote in a later field", "a,b\n1,\"x\" \n",
		"line 2: text after the closing quote of field 2");
	invalid("CR-only line ends", "a,b\r1,2\r", "line 1: CR not followed by LF");
	invalid("a CR in an unquoted field", "a,b\n1\r2,3\n", "line 2: CR not followed by LF");
	invalid("a CR at the very end", "a,b\n1,2\r", "line 2: CR not followed by LF");
	invalid("a CR on a blank line", "a,b\n\rx\n", "line 2: CR not followed by LF");
}

/* A string of n copies of c followed by tail (caller frees). */
static char *repeat(char c, size_t n, const char *tail)
{
	size_t tl = strlen(tail);
	char *s = malloc(n + tl + 1);

	memset(s, c, n);
	memcpy(s + n, tail, tl + 1);
	return s;
}

/* A header of n columns "c,c,...,c\n" (caller frees). */
static char *columns(unsigned n)
{
	char *s = malloc(2 * (size_t)n + 1);

	for (unsigned i = 0; i < n; i++) {
		s[2 * i] = 'c';
		s[2 * i + 1] = i + 1 < n ? ',' : '\n';
	}
	s[2 * n] = '\0';
	return s;
}

static void test_limits(void)
{
	struct verdict v;
	char *s, *big;

	s = columns(MLC_CSV_MAX_COLUMNS);
	check(s, strlen(s), 0, 0, &v);
	ok(v.rc == 0 && v.columns == MLC_CSV_MAX_COLUMNS, "a header of MLC_CSV_MAX_COLUMNS columns is accepted");
	free(s);
	s = columns(MLC_CSV_MAX_COLUMNS + 1);
	check(s, strlen(s), 0, 0, &v);
	is_str(v.msg, "line 1 has more than 10000 fields", "one column more is refused");
	free(s);

	big = repeat('x', MLC_CSV_MAX_FIELD, "\n");
	s = malloc(strlen(big) + 8);
	sprintf(s, "a\n%s", big);
	check(s, strlen(s), 0, 0, &v);
	ok(v.rc == 0 && v.rows == 1, "a field of MLC_CSV_MAX_FIELD bytes is accepted");
	free(s);
	free(big);
	big = repeat('x', MLC_CSV_MAX_FIELD + 1, "\n");
	s = malloc(strlen(big) + 8);
	sprintf(s, "a\n%s", big);
	check(s, strlen(s), 0, 0, &v);
	is_str(v.msg, "line 2: field 1 is longer than 1048576 bytes", "one byte more is refused");
	free(s);
	free(big);
	big = repeat('x', MLC_CSV_MAX_FIELD + 1, "\"\n");
	s = malloc(strlen(big) + 8);
	sprintf(s, "a,b\n1,\"%s", big);
	check(s, strlen(s), 0, 0, &v);
	is_str(v.msg, "line 2: field 2 is longer than 1048576 bytes", "a quoted field over the limit is refused");
	free(s);
	free(big);
}

static void test_api(void)
{
	struct mlc_csv c;

	mlc_csv_init(&c);
	ok(mlc_csv_feed(&c, "a,b\n1\n", 6) == -1 && mlc_csv_feed(&c, "2,3\n", 4) == -1 &&
	   mlc_csv_finish(&c) == -1 && !strcmp(mlc_csv_error(&c), "line 2 has 1 field, the header has 2"),
	   "after a failure every call fails and the first message stays");
	mlc_csv_init(&c);
	ok(mlc_csv_feed(&c, "a,b\n1,2\n", 8) == 0 && mlc_csv_feed(&c, NULL, 0) == 0 &&
	   mlc_csv_finish(&c) == 0 && c.rows == 1, "feeding zero bytes changes nothing");
	is_str(mlc_csv_error(&c), "", "the message is empty while nothing is wrong");
	mlc_csv_init(&c);
	ok(mlc_csv_feed(&c, "a\n1\n2", 5) == 0 && mlc_csv_finish(&c) == 0 && c.rows == 2,
	   "the last record without a newline counts once finished");
}

/* A data link's CSV must also be UTF-8 text; the message names the line. */
static void utf8_is(const char *title, const char *s, size_t len, const char *want)
{
	char msg[128] = "";
	int rc = mlc_csv_check_utf8(s, len, msg, sizeof(msg));

	is_int(rc, want ? -1 : 0, "UTF-8: %s", title);
	is_str(msg, want ? want : "", "UTF-8: %s: the message", title);
}

static void test_utf8(void)
{
	utf8_is("ASCII", BIN("a,b\n1,2\n"), NULL);
	utf8_is("accents and emoji", BIN("name,v\ncaf\xc3\xa9,\xf0\x9f\x98\x80\n"), NULL);
	utf8_is("empty", BIN(""), NULL);
	utf8_is("Latin-1 on line 2", BIN("name,v\ncaf\xe9,1\n"),
		"line 2 has a byte that is not UTF-8 (0xe9)");
	utf8_is("a UTF-8 encoded surrogate on line 1", BIN("a\xed\xa0\x80,b\n"),
		"line 1 has a byte that is not UTF-8 (0xed)");
	utf8_is("a sequence cut by the end", BIN("a,b\n1,\xc3"),
		"line 2 has a byte that is not UTF-8 (0xc3)");
	utf8_is("a line break inside a quoted field counts", BIN("a,b\n\"x\ny\",\xff\n"),
		"line 3 has a byte that is not UTF-8 (0xff)");
}

int main(void)
{
	test_valid();
	test_invalid();
	test_limits();
	test_api();
	test_utf8();
	return done_testing();
}
