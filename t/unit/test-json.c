/*
 * test-json.c - mlc_json_parse on valid and hostile request bodies: exact
 * byte offsets in the messages, the RFC 8259 rules json-c's strict mode
 * lets through, limits, and what happens to duplicate keys and invalid
 * UTF-8.
 */
#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"
#include "tap.h"

/* A string literal and its length, embedded NUL bytes included. */
#define LIT(s) (s), (sizeof(s) - 1)

#define PRINT_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* Parsing buf[0..len) fails with exactly the message want. */
static void fails_with(const char *title, const char *buf, size_t len, const char *want)
{
	json_object *o = (json_object *)1;
	char msg[256] = "";
	int rc = mlc_json_parse(buf, len, &o, msg, sizeof(msg));

	ok(rc == -1 && o == NULL, "%s: refused", title);
	is_str(msg, want, "%s: message", title);
}

/* Parsing buf[0..len) succeeds and the value prints as want. */
static void parses_as(const char *title, const char *buf, size_t len, const char *want)
{
	json_object *o = NULL;
	char msg[256] = "";
	int rc = mlc_json_parse(buf, len, &o, msg, sizeof(msg));

	if (!ok(rc == 0, "%s: accepted", title))
		diag("message: %s", msg);
	is_str(rc == 0 ? json_object_to_json_string_ext(o, PRINT_FLAGS) : msg, want,
	       "%s: value", title);
	json_object_put(o);
}

/* A buffer of n copies of c followed by tail (caller frees). */
static char *repeat(char c, size_t n, const char *tail)
{
	size_t tl = strlen(tail);
	char *s = malloc(n + tl + 1);

	memset(s, c, n);
	memcpy(s + n, tail, tl + 1);
	return s;
}

static void test_valid(void)
{
	parses_as("object", LIT("{\"a\": [1, 2.5, \"x\", true, null]}"),
		  "{\"a\":[1,2.5,\"x\",true,null]}");
	parses_as("top-level number needs no terminator", LIT("123"), "123");
	parses_as("top-level string", LIT("\"hi\""), "\"hi\"");
	parses_as("whitespace around the value is fine", LIT(" \r\n\t{} \n"), "{}");
	parses_as("negative zero, exponents", LIT("[-0, 1E+2, 1e-2, -0.5]"), "[0,1E+2,1e-2,-0.5]");
	parses_as("numbers keep the text they were written with", LIT("[0.89, 1e3, 1.50]"),
		  "[0.89,1e3,1.50]");
	parses_as("escapes including an escaped NUL are data, not raw bytes",
		  LIT("\"a\\u0000b\\n\\/\""), "\"a\\u0000b\\n/\"");
	parses_as("UTF-8 in strings is kept", LIT("\"caf\xc3\xa9\""), "\"caf\xc3\xa9\"");
	parses_as("int64 minimum fits", LIT("-9223372036854775808"), "-9223372036854775808");
	parses_as("uint64 maximum fits", LIT("18446744073709551615"), "18446744073709551615");
	parses_as("a tiny double underflows to zero but keeps its text", LIT("1e-400"), "1e-400");

	json_object *o = (json_object *)1;
	char msg[64];

	ok(mlc_json_parse(LIT("null"), &o, msg, sizeof(msg)) == 0 && o == NULL,
	   "the literal null parses to a NULL object");
}

static void test_offsets(void)
{
	fails_with("trailing comma in an object points at the '}'", LIT("{\"a\":1,}"),
		   "invalid JSON at byte 7: unexpected character");
	fails_with("trailing comma in an array points at the ']'", LIT("[1,2,]"),
		   "invalid JSON at byte 5: unexpected character");
	fails_with("missing comma between array items", LIT("[1 2]"),
		   "invalid JSON at byte 3: array value separator ',' expected");
	fails_with("missing colon after a key", LIT("{\"a\" 1}"),
		   "invalid JSON at byte 5: object property name separator ':' expected");
	fails_with("missing comma between members", LIT("{\"a\":1 \"b\":2}"),
		   "invalid JSON at byte 7: object value separator ',' expected");
	fails_with("unquoted key", LIT("{a:1}"),
		   "invalid JSON at byte 1: quoted object property name expected");
	fails_with("single-quoted strings (json-c strict mode accepts them)", LIT("{'a':1}"),
		   "invalid JSON at byte 1: unexpected character");
	fails_with("Python tuple in the documented predict example",
		   LIT("{\"data\": (5.1, 3.5, 1.4, 0.2), \"explain\": true}"),
		   "invalid JSON at byte 9: unexpected character");
	fails_with("Python True", LIT("{\"explain\": True}"),
		   "invalid JSON at byte 12: boolean expected");
	fails_with("a word that starts like a literal", LIT("[truex]"),
		   "invalid JSON at byte 5: array value separator ',' expected");
	fails_with("comments", LIT("/* c */ 1"), "invalid JSON at byte 0: unexpected character");
	fails_with("byte order mark", LIT("\xef\xbb\xbf{}"),
		   "invalid JSON at byte 0: unexpected character");
	fails_with("vertical tab is not JSON whitespace", LIT("\v{}"),
		   "invalid JSON at byte 0: unexpected character");
}

static void test_trailing(void)
{
	fails_with("garbage after the value", LIT("{\"a\":1} x"),
		   "invalid JSON at byte 8: unexpected character");
	fails_with("a second value", LIT("[1] [2]"), "invalid JSON at byte 4: unexpected character");
	fails_with("a second number", LIT("1 2"), "invalid JSON at byte 2: unexpected character");
	fails_with("raw NUL after the value", LIT("{}\0"), "invalid JSON at byte 2: unexpected NUL byte");
	fails_with("raw NUL between tokens", LIT("[1,\0 2]"),
		   "invalid JSON at byte 3: unexpected NUL byte");
	fails_with("raw NUL inside a string", LIT("[\"a\0b\"]"),
		   "invalid JSON at byte 3: unexpected NUL byte");
	fails_with("raw NUL as the first byte", LIT("\0{}"), "invalid JSON at byte 0: unexpected NUL byte");
}

static void test_incomplete(void)
{
	fails_with("object cut after the colon", LIT("{\"a\":"), "unexpected end of input at byte 5");
	fails_with("unterminated string", LIT("\"abc"), "unexpected end of input at byte 4");
	fails_with("unterminated array", LIT("[1, 2"), "unexpected end of input at byte 5");
	fails_with("cut literal", LIT("tru"), "unexpected end of input at byte 3");
	fails_with("lone minus", LIT("-"), "unexpected end of input at byte 1");
	fails_with("number cut after the point (json-c would take \"1.\")", LIT("1."),
		   "unexpected end of input at byte 2");
	fails_with("number cut after the exponent", LIT("[1e"), "unexpected end of input at byte 3");
	fails_with("cut escape", LIT("\"\\u12"), "unexpected end of input at byte 5");
	fails_with("earlier syntax error wins over the early end", LIT("[1 2, \"abc"),
		   "invalid JSON at byte 3: array value separator ',' expected");
}

static void test_empty(void)
{
	fails_with("empty body", "", 0, "request body is empty");
	fails_with("whitespace-only body", LIT(" \r\n\t "), "request body is empty");

	json_object *o = NULL;
	char msg[64];

	ok(mlc_json_parse(NULL, 0, &o, msg, sizeof(msg)) == -1 && !strcmp(msg, "request body is empty"),
	   "a NULL body is an empty body");
}

static void test_numbers(void)
{
	fails_with("NaN (json-c strict mode accepts it)", LIT("[NaN]"),
		   "invalid JSON at byte 1: unexpected character");
	fails_with("Infinity", LIT("Infinity"), "invalid JSON at byte 0: unexpected character");
	fails_with("-Infinity", LIT("-Infinity"), "invalid JSON at byte 1: unexpected character");
	fails_with("leading zero", LIT("01"), "invalid JSON at byte 1: invalid number");
	fails_with("leading plus", LIT("+1"), "invalid JSON at byte 0: unexpected character");
	fails_with("leading point", LIT(".5"), "invalid JSON at byte 0: unexpected character");
	fails_with("no digit after the point", LIT("[1.e5]"),
		   "invalid JSON at byte 3: unexpected character");
	fails_with("two points", LIT("1.5.3"), "invalid JSON at byte 3: invalid number");
	fails_with("two exponents", LIT("[1e5e5]"), "invalid JSON at byte 4: invalid number");
	fails_with("minus without digits", LIT("[-a]"), "invalid JSON at byte 2: number expected");
	fails_with("exponent without digits", LIT("[1E+]"), "invalid JSON at byte 4: number expected");
	parses_as("exponent with a sign and digits", LIT("[1E+5,2e-0]"), "[1E+5,2e-0]");
	fails_with("hex", LIT("0x10"), "invalid JSON at byte 1: unexpected character");
	fails_with("integer beyond uint64 (json-c would clamp it)", LIT("{\"n\": 99999999999999999999999}"),
		   "invalid JSON at byte 6: number out of range");
	fails_with("uint64 maximum plus one", LIT("18446744073709551616"),
		   "invalid JSON at byte 0: number out of range");
	fails_with("int64 minimum minus one", LIT("-9223372036854775809"),
		   "invalid JSON at byte 0: number out of range");
	fails_with("double overflowing to infinity", LIT("[1, 1e400]"),
		   "invalid JSON at byte 4: number out of range");

	char *big = repeat('9', 5000, "");

	fails_with("a 5000-digit number", big, strlen(big), "invalid JSON at byte 0: number out of range");
	free(big);
}

static void test_strings(void)
{
	fails_with("raw tab inside a string", LIT("\"a\tb\""),
		   "invalid JSON at byte 2: unescaped control character in string");
	fails_with("raw newline inside a string", LIT("{\"k\":\"a\nb\"}"),
		   "invalid JSON at byte 7: unescaped control character in string");
	fails_with("unknown escape", LIT("\"\\x\""), "invalid JSON at byte 2: invalid escape in string");
	fails_with("bad hex in \\u", LIT("\"\\u12G4\""), "invalid JSON at byte 5: invalid \\u escape in string");
}

/*
 * Invalid UTF-8 is refused (json-c loosely, the lexical pass strictly),
 * with the offset of the byte where the sequence goes wrong; a lone surrogate written as an
 * escape is accepted and json-c stores U+FFFD for it.
 */
static void test_utf8(void)
{
	fails_with("invalid UTF-8 lead byte", LIT("\"\xff\""), "invalid JSON at byte 1: invalid utf-8 string");
	fails_with("truncated UTF-8 sequence", LIT("[\"\xc3\"]"),
		   "invalid JSON at byte 3: invalid utf-8 string");
	fails_with("UTF-8 outside strings", LIT("\xc3\xa9"), "invalid JSON at byte 0: unexpected character");
	parses_as("lone surrogate escape becomes U+FFFD", LIT("\"\\ud800\""), "\"\xef\xbf\xbd\"");
	/* What json-c lets through and Python and utf8mb4 refuse. */
	fails_with("overlong 2-byte form of NUL", LIT("[\"\xc0\x80\"]"),
		   "invalid JSON at byte 2: invalid utf-8 string");
	fails_with("overlong 3-byte form of '/'", LIT("[\"\xe0\x80\xaf\"]"),
		   "invalid JSON at byte 3: invalid utf-8 string");
	fails_with("UTF-8 encoded surrogate U+D800", LIT("[\"\xed\xa0\x80\"]"),
		   "invalid JSON at byte 3: invalid utf-8 string");
	fails_with("code point above U+10FFFF", LIT("[\"\xf4\x90\x80\x80\"]"),
		   "invalid JSON at byte 3: invalid utf-8 string");
	fails_with("lead byte F5", LIT("[\"\xf5\x80\x80\x80\"]"),
		   "invalid JSON at byte 2: invalid utf-8 string");
	fails_with("continuation byte missing mid-sequence", LIT("[\"\xe2\x82x\"]"),
		   "invalid JSON at byte 4: invalid utf-8 string");
	parses_as("U+10FFFF, the last code point", LIT("\"\xf4\x8f\xbf\xbf\""), "\"\xf4\x8f\xbf\xbf\"");
	parses_as("U+D7FF and U+E000 around the surrogates", LIT("\"\xed\x9f\xbf\xee\x80\x80\""),
		  "\"\xed\x9f\xbf\xee\x80\x80\"");
	parses_as("a 4-byte emoji", LIT("\"\xf0\x9f\x98\x80\""), "\"\xf0\x9f\x98\x80\"");
}

/* Nesting up to MLC_JSON_MAX_DEPTH levels is fine, one more is refused
 * at the bracket that goes too deep. */
static void test_depth(void)
{
	char *open = repeat('[', MLC_JSON_MAX_DEPTH, "");
	char *deep = malloc(2 * MLC_JSON_MAX_DEPTH + 3);
	json_object *o = NULL;
	char msg[128];

	strcpy(deep, open);
	memset(deep + MLC_JSON_MAX_DEPTH, ']', MLC_JSON_MAX_DEPTH);
	deep[2 * MLC_JSON_MAX_DEPTH] = '\0';
	ok(mlc_json_parse(deep, strlen(deep), &o, msg, sizeof(msg)) == 0, "nesting of exactly the limit parses");
	json_object_put(o);
	free(deep);
	free(open);

	char *over = repeat('[', MLC_JSON_MAX_DEPTH + 1, "");

	fails_with("one level too deep", over, strlen(over), "invalid JSON at byte 32: nesting too deep");
	free(over);

	char *bomb = repeat('[', 10000, "");

	fails_with("10000 open brackets", bomb, strlen(bomb), "invalid JSON at byte 32: nesting too deep");
	free(bomb);

	char *objs = malloc(6 * 10000 + 1);

	for (int i = 0; i < 10000; i++)
		memcpy(objs + 6 * i, "{\"a\": ", 6);
	objs[6 * 10000] = '\0';
	fails_with("10000 nested objects", objs, strlen(objs), "invalid JSON at byte 192: nesting too deep");
	free(objs);
}

static void test_duplicates_and_limits(void)
{
	json_object *o = NULL, *v = NULL;
	char msg[128];

	/* Same as Python's json.loads: the last duplicate wins. */
	ok(mlc_json_parse(LIT("{\"a\":1,\"b\":0,\"a\":2}"), &o, msg, sizeof(msg)) == 0,
	   "duplicate keys parse");
	ok(json_object_object_get_ex(o, "a", &v) && json_object_get_int(v) == 2,
	   "the last duplicate key wins");
	is_int(json_object_object_length(o), 2, "a duplicate key is stored once");
	json_object_put(o);

	char small[16];

	ok(mlc_json_parse(LIT("{\"a\":1,}"), &o, small, sizeof(small)) == -1 &&
	   !strcmp(small, "invalid JSON at"), "a short message buffer is truncated, not overrun");

	/* A large, flat body parses in one pass. */
	size_t n = 200000;
	char *big = malloc(2 * n + 2);

	big[0] = '[';
	for (size_t i = 0; i < n; i++) {
		big[1 + 2 * i] = '7';
		big[2 + 2 * i] = i + 1 < n ? ',' : ']';
	}
	big[2 * n + 1] = '\0';
	ok(mlc_json_parse(big, strlen(big), &o, msg, sizeof(msg)) == 0 &&
	   json_object_array_length(o) == n, "an array of 200000 numbers parses");
	json_object_put(o);
	free(big);
}

int main(void)
{
	test_valid();
	test_offsets();
	test_trailing();
	test_incomplete();
	test_empty();
	test_numbers();
	test_strings();
	test_utf8();
	test_depth();
	test_duplicates_and_limits();
	return done_testing();
}
