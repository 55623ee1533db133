/*
 * jsonutil.c - parsing untrusted JSON request bodies.
 *
 * json-c's tokener does the structural work (nesting, separators, depth
 * limit, UTF-8), but even in strict mode json-c 0.16 lets through things
 * RFC 8259 forbids: single-quoted strings, NaN and Infinity, "1.", raw
 * control characters inside strings, and integers it silently clamps to
 * the int64/uint64 range.  So a small lexical pass runs over the whole
 * body first, and the earlier of its first complaint and json-c's is
 * reported, with its 0-based byte offset.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlc.h"
#include <json-c/printbuf.h>

#include "jsonutil.h"

/* Outcome of the lexical pass. */
enum lex_status {
	LEX_OK,		/* every token is valid JSON */
	LEX_BAD,	/* a token is invalid at .at, see .why */
	LEX_SHORT	/* the body ends inside a token */
};

/* The lexical pass's vaguest complaint: on a tie, json-c's account of
 * what it expected instead is more helpful. */
static const char unexpected_char[] = "unexpected character";

struct lex {
	const char *buf;
	size_t len;
	size_t pos;
	size_t at;		/* offset of the first problem */
	const char *why;
};

static int is_json_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int is_alnum(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static enum lex_status lex_fail(struct lex *lx, size_t at, const char *why)
{
	lx->at = at;
	lx->why = why;
	return LEX_BAD;
}

/* Complaint for a byte that no token may contain at this point. */
static enum lex_status lex_unexpected(struct lex *lx, size_t at)
{
	if (lx->buf[at] == '\0')
		return lex_fail(lx, at, "unexpected NUL byte");
	return lex_fail(lx, at, unexpected_char);
}

/*
 * Skip a string starting at the opening quote at lx->pos.  Checks the
 * escapes and refuses raw control characters (Python's json.loads does
 * too).  json-c checks UTF-8 only loosely (a lead byte and its count of
 * continuation bytes): overlong forms, surrogates and code points above
 * U+10FFFF, which Python and MariaDB's utf8mb4 refuse, are refused here,
 * at the byte that makes the sequence invalid, as json-c words it.
 */
static enum lex_status lex_string(struct lex *lx)
{
	size_t i = lx->pos + 1;

	while (i < lx->len) {
		unsigned char c = (unsigned char)lx->buf[i];

		if (c == '"') {
			lx->pos = i + 1;
			return LEX_OK;
		}
		if (c == '\0')
			return lex_fail(lx, i, "unexpected NUL byte");
		if (c < 0x20)
			return lex_fail(lx, i, "unescaped control character in string");
		if (c >= 0x80) {
			size_t n, bad;

			if (!(n = mlc_utf8_seq(lx->buf + i, lx->len - i, &bad)))
				return i + bad >= lx->len ? LEX_SHORT
				       : lex_fail(lx, i + bad, "invalid utf-8 string");
			i += n;
			continue;
		}
		if (c != '\\') {
			i++;
			continue;
		}
		if (++i >= lx->len)
			return LEX_SHORT;
		if (lx->buf[i] == 'u') {
			for (int k = 0; k < 4; k++) {
				if (++i >= lx->len)
					return LEX_SHORT;
				if (!is_hex(lx->buf[i]))
					return lex_fail(lx, i, "invalid \\u escape in string");
			}
		} else if (lx->buf[i] == '\0') {
			return lex_fail(lx, i, "unexpected NUL byte");
		} else if (!strchr("\"\\/bfnrt", lx->buf[i])) {
			return lex_fail(lx, i, "invalid escape in string");
		}
		i++;
	}
	return LEX_SHORT;
}

/*
 * Skip the digits at *i, of which the grammar wants at least one here:
 * LEX_SHORT when the body ends first, LEX_BAD at a byte that is no digit.
 */
static enum lex_status need_digits(struct lex *lx, size_t *i)
{
	size_t start = *i;

	while (*i < lx->len && is_digit(lx->buf[*i]))
		(*i)++;
	if (*i > start)
		return LEX_OK;
	return *i >= lx->len ? LEX_SHORT : lex_unexpected(lx, *i);
}

/*
 * The value of a number token must survive the trip through json-c
 * unchanged.  An integer must fit int64 (or uint64 when positive), where
 * json-c would otherwise clamp it; tok is a valid JSON integer, so it has
 * no leading zeros and comparing digit strings compares values.
 */
static int integer_in_range(const char *tok, size_t n)
{
	int neg = tok[0] == '-';
	const char *limit = neg ? "9223372036854775808" : "18446744073709551615";
	size_t nd = n - (size_t)neg, nl = strlen(limit);

	return nd < nl || (nd == nl && memcmp(tok + neg, limit, nl) <= 0);
}

/* Any other number must be finite as a double, where json-c's strtod
 * would give infinity (1e400). */
static int double_in_range(const char *tok, size_t n)
{
	char *copy = mlc_xstrndup(tok, n);
	double d = strtod(copy, NULL);

	free(copy);
	return isfinite(d);
}

/*
 * Check a number token against the JSON grammar
 *   -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
 * A digit, '.', sign or exponent right after a complete number ("01",
 * "1.5.3", "1e5e5") is refused here, since json-c would merely stop there.
 */
static enum lex_status lex_number(struct lex *lx)
{
	const char *b = lx->buf;
	size_t start = lx->pos, i = lx->pos;
	int integral = 1, in_range;
	enum lex_status st;

	if (b[i] == '-')
		i++;
	if (i < lx->len && b[i] == '0')
		i++;
	else if ((st = need_digits(lx, &i)) != LEX_OK)
		return st;
	if (i < lx->len && b[i] == '.') {
		integral = 0;
		i++;
		if ((st = need_digits(lx, &i)) != LEX_OK)
			return st;
	}
	if (i < lx->len && (b[i] == 'e' || b[i] == 'E')) {
		integral = 0;
		i += i + 1 < lx->len && (b[i + 1] == '+' || b[i + 1] == '-') ? 2 : 1;
		if ((st = need_digits(lx, &i)) != LEX_OK)
			return st;
	}
	if (i < lx->len && b[i] != '\0' && strchr("0123456789.eE+-", b[i]))
		return lex_fail(lx, i, "invalid number");
	in_range = integral ? integer_in_range(b + start, i - start)
			    : double_in_range(b + start, i - start);
	if (!in_range)
		return lex_fail(lx, start, "number out of range");
	lx->pos = i;
	return LEX_OK;
}

/*
 * Check a bare word: only true, false and null exist (json-c would also
 * take NaN, Infinity and, outside strict mode, TRUE).  The complaint points
 * at the first byte that departs from the literal.
 */
static enum lex_status lex_word(struct lex *lx)
{
	static const char *const literals[] = { "true", "false", "null" };
	const char *lit = NULL;
	size_t i = lx->pos;

	for (size_t k = 0; k < sizeof(literals) / sizeof(literals[0]); k++)
		if (lx->buf[i] == literals[k][0])
			lit = literals[k];
	if (!lit)
		return lex_unexpected(lx, i);
	for (size_t k = 0; lit[k]; k++, i++) {
		if (i >= lx->len)
			return LEX_SHORT;
		if (lx->buf[i] != lit[k])
			return lex_unexpected(lx, i);
	}
	if (i < lx->len && is_alnum(lx->buf[i]))
		return lex_unexpected(lx, i);
	lx->pos = i;
	return LEX_OK;
}

/*
 * Walk every token of buf[0..len).  Structure (what may follow what) is
 * json-c's business; this only decides whether each token is valid JSON.
 */
static enum lex_status lex_scan(struct lex *lx)
{
	enum lex_status st;

	while (lx->pos < lx->len) {
		char c = lx->buf[lx->pos];

		if (is_json_ws(c) || (c != '\0' && strchr("{}[],:", c))) {
			lx->pos++;
			continue;
		}
		if (c == '"')
			st = lex_string(lx);
		else if (c == '-' || is_digit(c))
			st = lex_number(lx);
		else if (is_alnum(c))
			st = lex_word(lx);
		else
			st = lex_unexpected(lx, lx->pos);
		if (st != LEX_OK)
			return st;
	}
	return LEX_OK;
}

/* Where json-c stopped and why; at == SIZE_MAX when it found nothing wrong. */
struct tok_result {
	json_object *obj;
	size_t at;
	const char *why;
	int short_input;	/* ran out of input mid-value */
	int utf8;		/* the complaint is about UTF-8 */
};

/*
 * Run json-c over the body.  A top-level number is only known to be
 * complete once something follows it, so when json-c asks for more after
 * the last byte it is fed the NUL that ends a C string, its own
 * end-of-input convention.
 */
static void tok_parse(const char *buf, size_t len, struct tok_result *r)
{
	json_tokener *tok = json_tokener_new_ex(MLC_JSON_MAX_DEPTH);
	enum json_tokener_error e;

	if (!tok)
		mlc_die("out of memory creating a JSON tokener");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	r->obj = json_tokener_parse_ex(tok, buf, (int)len);
	r->at = SIZE_MAX;
	r->why = NULL;
	r->short_input = 0;
	e = json_tokener_get_error(tok);
	r->utf8 = e == json_tokener_error_parse_utf8_string;
	if (e == json_tokener_continue) {
		r->obj = json_tokener_parse_ex(tok, "", 1);
		if (json_tokener_get_error(tok) != json_tokener_success) {
			r->at = len;
			r->short_input = 1;
		}
	} else if (e != json_tokener_success) {
		r->at = json_tokener_get_parse_end(tok);
		r->why = json_tokener_error_desc(e);
	} else {
		/* Strict mode already refuses trailing data; checked here
		 * too so that the promise does not rest on a json-c flag. */
		size_t end = json_tokener_get_parse_end(tok);

		while (end < len && is_json_ws(buf[end]))
			end++;
		if (end < len) {
			r->at = end;
			r->why = "unexpected data after the JSON value";
		}
	}
	json_tokener_free(tok);
	if (r->at != SIZE_MAX) {
		json_object_put(r->obj);
		r->obj = NULL;
	}
}

static int only_ws(const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!is_json_ws(buf[i]))
			return 0;
	return 1;
}

/*
 * Parse exactly one JSON value from buf[0..len); see jsonutil.h.  Of the
 * lexical pass and json-c, whichever complains at the smaller offset is
 * reported; on a tie the lexical one, unless all it can say is
 * "unexpected character" (json-c calls any non-ASCII byte outside a
 * string, a byte order mark included, invalid UTF-8, which it is not).
 */
int mlc_json_parse(const char *buf, size_t len, json_object **out,
		   char *msg, size_t msglen)
{
	struct lex lx = { .buf = buf, .len = len, .at = SIZE_MAX };
	struct tok_result r;
	enum lex_status st;

	*out = NULL;
	if (!buf || only_ws(buf, len)) {
		snprintf(msg, msglen, "request body is empty");
		return -1;
	}
	if (len > INT_MAX) {
		snprintf(msg, msglen, "request body is too large to parse");
		return -1;
	}
	st = lex_scan(&lx);
	if (st == LEX_SHORT) {
		lx.at = len;
		lx.why = NULL;
	}
	tok_parse(buf, len, &r);
	if (st == LEX_OK && r.at == SIZE_MAX) {
		*out = r.obj;
		return 0;
	}
	json_object_put(r.obj);
	if (r.at < lx.at || (r.at == lx.at && r.why && !r.utf8 && lx.why == unexpected_char)) {
		lx.at = r.at;
		lx.why = r.short_input ? NULL : r.why;
	}
	if (lx.why)
		snprintf(msg, msglen, "invalid JSON at byte %zu: %s", lx.at, lx.why);
	else
		snprintf(msg, msglen, "unexpected end of input at byte %zu", lx.at);
	return -1;
}

static int raw_serializer(struct json_object *jso, struct printbuf *pb, int level, int flags)
{
	const char *text = json_object_get_userdata(jso);

	return printbuf_memappend(pb, text, (int)strlen(text));
}

json_object *mlc_json_raw(const char *text)
{
	json_object *o;

	if (!text)
		return NULL;
	o = json_object_new_int(0);
	json_object_set_serializer(o, raw_serializer, mlc_xstrdup(text), json_object_free_userdata);
	return o;
}
