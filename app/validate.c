/*
 * validate.c - checking a JSON body against a declarative schema and
 * building the normalized value the handlers work on.
 *
 * What is accepted, and how it is converted, follows pydantic 2's lax
 * mode for JSON input (FastAPI 0.110 on pydantic 2 ran the Python
 * service): "1" and true are integers, numbers are not strings.  Errors
 * keep the pydantic v1 shape and wording that clients already parse.
 * Validation never stops at the first failure: every
 * field, and every item of every list, is checked and each failure gets
 * its own entry, with a loc path of keys (strings) and list indices
 * (integers).  The loc is kept as a chain of stack frames, one per level,
 * and only turned into JSON when an error is actually reported.
 *
 * Normalized values share the input's leaves where nothing changes
 * (json-c counts references), which also keeps a number's original text:
 * json-c serializes a parsed double from the text it was parsed from, so
 * 0.89 goes back out as 0.89 and not 0.89000000000000001.
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "mlc.h"
#include "validate.h"

/* One step of an error's loc: a key, or (key NULL) a list index. */
struct loc {
	const struct loc *up;
	const char *key;
	size_t index;
};

static int check_value(const struct mlc_field *f, enum mlc_vtype type,
		       json_object *v, const struct loc *at,
		       json_object *errors, json_object **out);

/* json-c reports allocation failure as NULL or -1; like every other
 * allocation in the service, that ends the worker. */
static json_object *need(json_object *o)
{
	if (!o)
		mlc_die("out of memory building JSON");
	return o;
}

static void obj_add(json_object *o, const char *key, json_object *v)
{
	if (json_object_object_add(o, key, v) < 0)
		mlc_die("out of memory building JSON");
}

static void arr_add(json_object *a, json_object *v)
{
	if (json_object_array_add(a, v) < 0)
		mlc_die("out of memory building JSON");
}

/* Append the steps of at, outermost first, to the array arr. */
static void loc_to_json(json_object *arr, const struct loc *at)
{
	if (!at)
		return;
	loc_to_json(arr, at->up);
	if (at->key)
		arr_add(arr, need(json_object_new_string(at->key)));
	else
		arr_add(arr, need(json_object_new_int64((int64_t)at->index)));
}

/*
 * Append {"loc": [...], "msg": msg, "type": type[, "ctx": ctx]} to errors.
 * Takes ownership of ctx (which may be NULL).
 */
static void add_error(json_object *errors, const struct loc *at, const char *msg,
		      const char *type, json_object *ctx)
{
	json_object *e, *loc;

	if (!errors) {
		json_object_put(ctx);
		return;
	}
	e = need(json_object_new_object());
	loc = need(json_object_new_array());
	loc_to_json(loc, at);
	obj_add(e, "loc", loc);
	obj_add(e, "msg", need(json_object_new_string(msg)));
	obj_add(e, "type", need(json_object_new_string(type)));
	if (ctx)
		obj_add(e, "ctx", ctx);
	arr_add(errors, e);
}

/* {"limit_value": n}, the ctx of every limit error. */
static json_object *limit_ctx(long long n)
{
	json_object *ctx = need(json_object_new_object());

	obj_add(ctx, "limit_value", need(json_object_new_int64(n)));
	return ctx;
}

/* Report a bound on an integer; ge selects "greater than or equal". */
static int bound_error(json_object *errors, const struct loc *at, int ge, long long limit)
{
	char msg[96];

	snprintf(msg, sizeof(msg), "ensure this value is %s than or equal to %lld",
		 ge ? "greater" : "less", limit);
	add_error(errors, at, msg, ge ? "value_error.number.not_ge" : "value_error.number.not_le",
		  limit_ctx(limit));
	return -1;
}

/*
 * "unexpected value; permitted: 'a', 'b'" with ctx {"given": v,
 * "permitted": ["a", "b"]}, as pydantic words a Literal mismatch.
 */
static int choices_error(const struct mlc_field *f, json_object *given,
			 const struct loc *at, json_object *errors)
{
	json_object *ctx = need(json_object_new_object());
	json_object *permitted = need(json_object_new_array());
	struct mlc_buf msg = MLC_BUF_INIT(0);

	/* The choices are the schema's, a few short words. */
	mlc_buf_puts(&msg, "unexpected value; permitted: ");
	for (size_t i = 0; f->choices[i]; i++) {
		mlc_buf_appendf(&msg, "%s'%s'", i ? ", " : "", f->choices[i]);
		arr_add(permitted, need(json_object_new_string(f->choices[i])));
	}
	obj_add(ctx, "given", json_object_get(given));
	obj_add(ctx, "permitted", permitted);
	add_error(errors, at, mlc_buf_str(&msg), "value_error.const", ctx);
	mlc_buf_release(&msg);
	return -1;
}

static int is_choice(const struct mlc_field *f, const char *s)
{
	for (size_t i = 0; f->choices[i]; i++)
		if (!strcmp(f->choices[i], s))
			return 1;
	return 0;
}

/* Characters, as pydantic and the database's VARCHAR(n) count them: the
 * bytes that do not continue a UTF-8 sequence (json-c has checked that the
 * text is valid UTF-8). */
static size_t utf8_chars(const char *s, size_t len)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++)
		n += ((unsigned char)s[i] & 0xC0) != 0x80;
	return n;
}

/*
 * The constraints on a string value s (of len bytes; given is the value
 * as the client sent it, for the choices error).  An embedded NUL is
 * refused: every consumer downstream sees a C string, and a check
 * function would otherwise only see the part before it.
 */
static int check_string_rules(const struct mlc_field *f, const char *s, size_t len,
			      json_object *given, const struct loc *at,
			      json_object *errors)
{
	char msg[96];

	if (strlen(s) != len) {
		add_error(errors, at, "string must not contain NUL characters",
			  "value_error.str.regex", NULL);
		return -1;
	}
	if (f->max_len && utf8_chars(s, len) > f->max_len) {
		snprintf(msg, sizeof(msg), "ensure this value has at most %zu characters", f->max_len);
		add_error(errors, at, msg, "value_error.any_str.max_length",
			  limit_ctx((long long)f->max_len));
		return -1;
	}
	if (f->choices && !is_choice(f, s))
		return choices_error(f, given, at, errors);
	if (f->check && !f->check(s)) {
		add_error(errors, at,
			  f->check_msg ? f->check_msg : "string does not match the expected format",
			  "value_error.str.regex", NULL);
		return -1;
	}
	return 0;
}

/*
 * MLC_V_STR: a JSON string only.  Numbers and booleans are refused, as
 * pydantic 2 refuses them for str fields of a JSON body.
 */
static int check_str(const struct mlc_field *f, json_object *v, const struct loc *at,
		     json_object *errors, json_object **out)
{
	if (!json_object_is_type(v, json_type_string)) {
		add_error(errors, at, "str type expected", "type_error.str", NULL);
		return -1;
	}
	if (check_string_rules(f, json_object_get_string(v), (size_t)json_object_get_string_len(v),
			       v, at, errors) < 0)
		return -1;
	*out = json_object_get(v);
	return 0;
}

/* ---- numbers written as text ---- */

/*
 * The byte length of the Unicode White_Space character that starts at s
 * (at most len bytes), or 0: what Rust's str::trim, and so pydantic,
 * strips around a number.  The text is valid UTF-8 (the JSON parser
 * checked it), so matching the encoded bytes is enough.
 */
static size_t space_len(const unsigned char *s, size_t len)
{
	if (len >= 1 && ((s[0] >= 0x09 && s[0] <= 0x0D) || s[0] == 0x20))
		return 1;
	if (len >= 2 && s[0] == 0xC2 && (s[1] == 0x85 || s[1] == 0xA0))
		return 2;
	if (len < 3)
		return 0;
	if ((s[0] == 0xE1 && s[1] == 0x9A && s[2] == 0x80) ||			/* U+1680 */
	    (s[0] == 0xE2 && s[1] == 0x80 &&
	     (s[2] <= 0x8A || s[2] == 0xA8 || s[2] == 0xA9 || s[2] == 0xAF)) ||	/* U+2000.. */
	    (s[0] == 0xE2 && s[1] == 0x81 && s[2] == 0x9F) ||			/* U+205F */
	    (s[0] == 0xE3 && s[1] == 0x80 && s[2] == 0x80))			/* U+3000 */
		return 3;
	return 0;
}

/* Narrow [*s, *s + *len) to leave out white space at both ends. */
static void trim_space(const char **s, size_t *len)
{
	const unsigned char *b = (const unsigned char *)*s;
	size_t n = *len, k;

	while (n && (k = space_len(b, n))) {
		b += k;
		n -= k;
	}
	for (;;) {
		/* A space character ending the text is 1, 2 or 3 bytes long;
		 * only a whole character can match, since b is valid UTF-8. */
		for (k = 1; k <= 3 && k <= n; k++)
			if (space_len(b + n - k, k) == k)
				break;
		if (k > 3 || k > n)
			break;
		n -= k;
	}
	*s = (const char *)b;
	*len = n;
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * An integer written as text, the way pydantic 2 reads a string for an
 * int field: white space around it is ignored; then an optional sign,
 * decimal digits (leading zeros allowed, single underscores may separate
 * digits: "1_000"), and optionally a decimal point followed by zeros only
 * ("1.0", "42.00").  "1.", "1.5", "1e3", "0x10", "1__0" and "" are not
 * integers.  Returns 0 with *n set, or with *over
 * set to +1 / -1 when the value is beyond the int64 range; -1 when the
 * text is not an integer.
 */
static int int_from_text(const char *s, size_t len, long long *n, int *over)
{
	unsigned long long mag = 0, lim;
	size_t i = 0;
	int neg = 0;

	*over = 0;
	trim_space(&s, &len);
	if (i < len && (s[i] == '+' || s[i] == '-'))
		neg = s[i++] == '-';
	lim = neg ? (unsigned long long)INT64_MAX + 1 : (unsigned long long)INT64_MAX;
	for (;;) {
		if (i >= len || !is_digit(s[i]))
			return -1;
		if (mag > (lim - (unsigned long long)(s[i] - '0')) / 10)
			*over = neg ? -1 : 1;
		else
			mag = mag * 10 + (unsigned long long)(s[i] - '0');
		i++;
		if (i < len && s[i] == '_')
			i++;			/* a digit must follow */
		else if (i >= len || !is_digit(s[i]))
			break;
	}
	if (i < len && s[i] == '.') {
		if (++i >= len)
			return -1;
		while (i < len && s[i] == '0')
			i++;
	}
	if (i != len)
		return -1;
	if (!*over)
		*n = neg ? (long long)(0 - mag) : (long long)mag;
	return 0;
}

/*
 * Whether s[0..len) is a float as Rust (and so pydantic 2) parses one:
 *   [+-]? ( inf | infinity | nan | digits [. digits?] | . digits ) ([eE] [+-]? digits)?
 * the words in any case; no white space, hex or underscores.
 */
static int float_syntax(const char *s, size_t len)
{
	static const char *const words[] = { "inf", "infinity", "nan" };
	size_t i = 0, digits = 0;

	if (i < len && (s[i] == '+' || s[i] == '-'))
		i++;
	for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++)
		if (len - i == strlen(words[w]) && !strncasecmp(s + i, words[w], len - i))
			return 1;
	for (; i < len && is_digit(s[i]); i++)
		digits++;
	if (i < len && s[i] == '.')
		for (i++; i < len && is_digit(s[i]); i++)
			digits++;
	if (!digits)
		return 0;
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		size_t e0;

		if (++i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		for (e0 = i; i < len && is_digit(s[i]); i++)
			;
		if (i == e0)
			return 0;
	}
	return i == len;
}

/* s[0..len) as a double when float_syntax accepts it. */
static int parse_float(const char *s, size_t len, double *d)
{
	char *copy;

	if (!float_syntax(s, len))
		return -1;
	copy = mlc_xstrndup(s, len);
	*d = strtod(copy, NULL);	/* the workers keep the "C" locale */
	free(copy);
	return 0;
}

/*
 * A float written as text, as pydantic 2 reads a string for a float
 * field: the text without surrounding white space, or else the text
 * with single underscores between characters removed ("1_000.5").
 * Returns 0 with *d set (possibly infinite or NaN: "inf", "1e400"), or
 * -1 when the text is not a float.
 */
static int float_from_text(const char *s, size_t len, double *d)
{
	const char *t = s;
	size_t tlen = len, i, k = 0;
	char *plain;
	int rc;

	trim_space(&t, &tlen);
	if (parse_float(t, tlen, d) == 0)
		return 0;
	if (!len || s[0] == '_' || s[len - 1] == '_' || !memchr(s, '_', len))
		return -1;
	plain = mlc_xmalloc(len);
	for (i = 0; i < len; i++) {
		if (s[i] != '_')
			plain[k++] = s[i];
		else if (s[i + 1] == '_')
			break;
	}
	rc = i == len ? parse_float(plain, k, d) : -1;
	free(plain);
	return rc;
}

/*
 * d written as Python's repr() writes a float, which is what the Python
 * service returned for a number it had converted: the shortest digits
 * that read back as d, fixed notation for exponents -4 to 15 ("16.0",
 * "0.0001", "1000000000000000.0"), otherwise "1e+16", "1e-05".  d is
 * finite; out has room for 64 bytes.
 */
static void float_repr(double d, char *out)
{
	char buf[40], digits[24], *m, *w = out;
	int p, e, nd = 0, point, i;

	for (p = 1; p < 17; p++) {
		snprintf(buf, sizeof(buf), "%.*e", p - 1, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	snprintf(buf, sizeof(buf), "%.*e", p - 1, d);
	m = buf;
	if (*m == '-')
		*w++ = *m++;
	for (; *m && *m != 'e'; m++)
		if (is_digit(*m))
			digits[nd++] = *m;
	e = atoi(m + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	point = e + 1;		/* digits before the decimal point */
	if (e < -4 || e >= 16) {
		*w++ = digits[0];
		if (nd > 1) {
			*w++ = '.';
			memcpy(w, digits + 1, (size_t)nd - 1);
			w += nd - 1;
		}
		sprintf(w, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
		return;
	}
	if (point <= 0) {
		*w++ = '0';
		*w++ = '.';
		for (i = point; i < 0; i++)
			*w++ = '0';
		memcpy(w, digits, (size_t)nd);
		w += nd;
	} else {
		for (i = 0; i < point; i++)
			*w++ = i < nd ? digits[i] : '0';
		*w++ = '.';
		if (point >= nd)
			*w++ = '0';
		for (i = point; i < nd; i++)
			*w++ = digits[i];
	}
	*w = '\0';
}

/* A converted number as a JSON double written the way Python writes it. */
static json_object *new_float(double d)
{
	char text[64];

	float_repr(d, text);
	return need(json_object_new_double_s(d, text));
}

/* ---- integers, numbers, booleans ---- */

/*
 * The integer value of a JSON number v, when it has one: *over is set to
 * +1 / -1 when the value is integral but beyond the int64 range (a huge
 * uint64 or a double such as 1e300), where it is reported as breaking the
 * implicit bound rather than silently clamped.
 */
static int integral_value(json_object *v, long long *n, int *over)
{
	*over = 0;
	if (json_object_is_type(v, json_type_int)) {
		*n = json_object_get_int64(v);
		if (*n == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX)
			*over = 1;
		return 0;
	}
	if (json_object_is_type(v, json_type_double)) {
		double d = json_object_get_double(v);

		/* Every double beyond 2^63 is integral (they are beyond 2^53);
		 * within the range the round trip tells. */
		if (!isfinite(d))
			return -1;
		if (d >= 9223372036854775808.0)
			*over = 1;
		else if (d < -9223372036854775808.0)
			*over = -1;
		else if ((double)(*n = (long long)d) != d)
			return -1;
		return 0;
	}
	return -1;
}

/*
 * MLC_V_INT, pydantic 2's lax int: a JSON integer; a number with an
 * integral value (3.0 -> 3); true / false (1 / 0); a string holding an
 * integer (see int_from_text: " 1 ", "1.0", "1_000").  3.5, "1.5",
 * "abc", lists and objects are refused.
 */
static int check_int(const struct mlc_field *f, json_object *v, const struct loc *at,
		     json_object *errors, json_object **out)
{
	long long n = 0;
	int over = 0, rc;

	if (json_object_is_type(v, json_type_boolean)) {
		n = json_object_get_boolean(v);
		rc = 0;
	} else if (json_object_is_type(v, json_type_string)) {
		rc = int_from_text(json_object_get_string(v), (size_t)json_object_get_string_len(v),
				   &n, &over);
	} else {
		rc = integral_value(v, &n, &over);
	}
	if (rc < 0) {
		add_error(errors, at, "value is not a valid integer", "type_error.integer", NULL);
		return -1;
	}
	if (over > 0)
		return bound_error(errors, at, 0, f->has_max ? f->max : LLONG_MAX);
	if (over < 0)
		return bound_error(errors, at, 1, f->has_min ? f->min : LLONG_MIN);
	if (f->has_min && n < f->min)
		return bound_error(errors, at, 1, f->min);
	if (f->has_max && n > f->max)
		return bound_error(errors, at, 0, f->max);
	*out = need(json_object_new_int64(n));
	return 0;
}

/*
 * MLC_V_NUM: a JSON number is shared, so that its original text stays
 * (0.89 stays 0.89, 16 stays 16).  What pydantic 2's lax float also
 * takes is converted to the float it gives, written as Python writes it:
 * a string holding a float ("0.89" -> 0.89, " 16 " -> 16.0, "1_000" ->
 * 1000.0) and true / false (1.0 / 0.0).  A string whose float is not
 * finite ("inf", "nan", "1e400") has no JSON form and is refused.
 */
static int check_num(json_object *v, const struct loc *at, json_object *errors,
		     json_object **out)
{
	double d;

	if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)) {
		*out = json_object_get(v);
		return 0;
	}
	if (json_object_is_type(v, json_type_boolean)) {
		*out = new_float(json_object_get_boolean(v) ? 1.0 : 0.0);
		return 0;
	}
	if (!json_object_is_type(v, json_type_string) ||
	    float_from_text(json_object_get_string(v), (size_t)json_object_get_string_len(v),
			    &d) < 0) {
		add_error(errors, at, "value is not a valid float", "type_error.float", NULL);
		return -1;
	}
	if (!isfinite(d)) {
		add_error(errors, at, "ensure this value is a finite number",
			  "value_error.number.not_finite", NULL);
		return -1;
	}
	*out = new_float(d);
	return 0;
}

/*
 * A boolean as pydantic 2's lax bool reads one: true / false; the numbers
 * 0 and 1 (also 0.0 and 1.0); the strings "0", "1" and, in any case,
 * "f", "n", "no", "off", "false", "t", "y", "on", "yes", "true" (taken
 * as they are: " true" is not a boolean).  Returns 0 or 1, or -1.
 */
static int bool_value(json_object *v)
{
	static const char *const no[] = { "0", "f", "n", "no", "off", "false" };
	static const char *const yes[] = { "1", "t", "y", "on", "yes", "true" };
	long long n;
	int over;

	if (json_object_is_type(v, json_type_boolean))
		return json_object_get_boolean(v);
	if (json_object_is_type(v, json_type_string)) {
		const char *s = json_object_get_string(v);

		if ((size_t)json_object_get_string_len(v) != strlen(s))
			return -1;
		for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
			if (!strcasecmp(s, no[i]))
				return 0;
			if (!strcasecmp(s, yes[i]))
				return 1;
		}
		return -1;
	}
	if (integral_value(v, &n, &over) == 0 && !over && (n == 0 || n == 1))
		return (int)n;
	return -1;
}

/* MLC_V_BOOL: see bool_value; the result is a JSON boolean. */
static int check_bool(json_object *v, const struct loc *at, json_object *errors,
		      json_object **out)
{
	int b = bool_value(v);

	if (b < 0) {
		add_error(errors, at, "value could not be parsed to a boolean", "type_error.bool", NULL);
		return -1;
	}
	*out = json_object_is_type(v, json_type_boolean) ? json_object_get(v)
							 : need(json_object_new_boolean(b));
	return 0;
}

/*
 * MLC_V_STR_OR_BOOL: a string is kept as given and obeys the field's
 * string constraints (max_len, choices, check); a boolean is kept; the
 * numbers 0 and 1 become false and true, as pydantic 2 read them for a
 * bool field.  Other numbers, lists and objects are refused.
 */
static int check_str_or_bool(const struct mlc_field *f, json_object *v, const struct loc *at,
			     json_object *errors, json_object **out)
{
	int b;

	if (json_object_is_type(v, json_type_string)) {
		if (check_string_rules(f, json_object_get_string(v),
				       (size_t)json_object_get_string_len(v), v, at, errors) < 0)
			return -1;
		*out = json_object_get(v);
		return 0;
	}
	if ((!json_object_is_type(v, json_type_boolean) && !json_object_is_type(v, json_type_int) &&
	     !json_object_is_type(v, json_type_double)) || (b = bool_value(v)) < 0) {
		add_error(errors, at, "value is not a valid string or boolean", "type_error.str", NULL);
		return -1;
	}
	*out = json_object_is_type(v, json_type_boolean) ? json_object_get(v)
							 : need(json_object_new_boolean(b));
	return 0;
}

/*
 * Validate the object in against fields[] (ending with a NULL name) and
 * build the normalized object, keys in schema order.  Returns NULL after
 * reporting every failing field.  partial: absent fields are neither
 * required nor added as null.
 */
static json_object *check_fields(json_object *in, const struct mlc_field *fields,
				 const struct loc *at, json_object *errors, int partial)
{
	json_object *res = need(json_object_new_object());
	int failed = 0;

	for (const struct mlc_field *f = fields; f->name; f++) {
		struct loc here = { at, f->name, 0 };
		json_object *v, *norm = NULL;

		if (!json_object_object_get_ex(in, f->name, &v)) {
			if (partial)
				continue;
			if (f->flags & MLC_F_REQUIRED) {
				add_error(errors, &here, "field required", "value_error.missing", NULL);
				failed = 1;
			} else {
				obj_add(res, f->name, NULL);
			}
			continue;
		}
		if (check_value(f, f->type, v, &here, errors, &norm) < 0)
			failed = 1;
		else
			obj_add(res, f->name, norm);
	}
	if (failed) {
		json_object_put(res);
		return NULL;
	}
	return res;
}

/*
 * MLC_V_OBJ: a nested object, validated with .fields (absent optional
 * fields become null: partial only applies at the top level).  Without
 * .fields any object is accepted as is.
 */
static int check_obj(const struct mlc_field *f, json_object *v, const struct loc *at,
		     json_object *errors, json_object **out)
{
	if (!json_object_is_type(v, json_type_object)) {
		add_error(errors, at, "value is not a valid dict", "type_error.dict", NULL);
		return -1;
	}
	if (!f->fields) {
		*out = json_object_get(v);
		return 0;
	}
	*out = check_fields(v, f->fields, at, errors, 0);
	return *out ? 0 : -1;
}

/*
 * MLC_V_LIST: every item is checked as type f->item, with the field's
 * .fields, min/max, choices and check; max_len counts the items.  A list
 * over max_len is refused before its items are looked at, so a huge list
 * costs one error rather than one per item.  Items are never nullable.
 */
static int check_list(const struct mlc_field *f, json_object *v, const struct loc *at,
		      json_object *errors, json_object **out)
{
	struct mlc_field item = *f;
	json_object *res;
	size_t n;
	int failed = 0;

	if (!json_object_is_type(v, json_type_array)) {
		add_error(errors, at, "value is not a valid list", "type_error.list", NULL);
		return -1;
	}
	n = json_object_array_length(v);
	if (f->max_len && n > f->max_len) {
		char msg[96];

		snprintf(msg, sizeof(msg), "ensure this value has at most %zu items", f->max_len);
		add_error(errors, at, msg, "value_error.list.max_items",
			  limit_ctx((long long)f->max_len));
		return -1;
	}
	item.flags = 0;
	item.max_len = 0;
	item.item = MLC_V_ANY;	/* a list of lists has no way to type its inner items */
	res = need(json_object_new_array_ext((int)n));
	for (size_t i = 0; i < n; i++) {
		struct loc here = { at, NULL, i };
		json_object *norm = NULL;

		if (check_value(&item, f->item, json_object_array_get_idx(v, i), &here,
				errors, &norm) < 0)
			failed = 1;
		else if (!failed)
			arr_add(res, norm);
		else
			json_object_put(norm);
	}
	if (failed) {
		json_object_put(res);
		return -1;
	}
	*out = res;
	return 0;
}

/*
 * Check one value v (NULL being JSON null) as type, report what is wrong
 * at loc at, and store the normalized value in *out.  Returns 0 or -1.
 */
static int check_value(const struct mlc_field *f, enum mlc_vtype type,
		       json_object *v, const struct loc *at,
		       json_object *errors, json_object **out)
{
	*out = NULL;
	if (!v) {
		if (f->flags & MLC_F_NULLABLE)
			return 0;
		add_error(errors, at, "none is not an allowed value", "type_error.none.not_allowed", NULL);
		return -1;
	}
	switch (type) {
	case MLC_V_STR:
		return check_str(f, v, at, errors, out);
	case MLC_V_INT:
		return check_int(f, v, at, errors, out);
	case MLC_V_NUM:
		return check_num(v, at, errors, out);
	case MLC_V_BOOL:
		return check_bool(v, at, errors, out);
	case MLC_V_STR_OR_BOOL:
		return check_str_or_bool(f, v, at, errors, out);
	case MLC_V_OBJ:
		return check_obj(f, v, at, errors, out);
	case MLC_V_LIST:
		return check_list(f, v, at, errors, out);
	case MLC_V_ANY:
		*out = json_object_get(v);
		return 0;
	}
	mlc_die("unknown field type %d for '%s'", (int)type, f->name ? f->name : "(item)");
}

/* See validate.h.  loc0 may be NULL, for errors with no outer loc. */
json_object *mlc_validate(json_object *in, const struct mlc_field *schema,
			  const char *loc0, json_object *errors, int partial)
{
	struct loc root = { NULL, loc0, 0 };
	const struct loc *at = loc0 ? &root : NULL;

	if (!json_object_is_type(in, json_type_object)) {
		add_error(errors, at, "value is not a valid dict", "type_error.dict", NULL);
		return NULL;
	}
	return check_fields(in, schema, at, errors, partial);
}

/* Append one detail entry; the varargs are loc strings ending with NULL. */
void mlc_validate_error(json_object *errors, const char *msg, const char *type, ...)
{
	json_object *e = need(json_object_new_object());
	json_object *loc = need(json_object_new_array());
	const char *s;
	va_list ap;

	va_start(ap, type);
	while ((s = va_arg(ap, const char *)))
		arr_add(loc, need(json_object_new_string(s)));
	va_end(ap);
	obj_add(e, "loc", loc);
	obj_add(e, "msg", need(json_object_new_string(msg)));
	obj_add(e, "type", need(json_object_new_string(type)));
	arr_add(errors, e);
}

/* ---- ids ---- */

static int id_char(char c, int first)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (!first && (c == '.' || c == '_' || c == '-'));
}

int mlc_is_deployment_id(const char *s)
{
	size_t n;

	if (!s || !id_char(s[0], 1))
		return 0;
	for (n = 1; s[n] && n < MLC_DEPLOYMENT_ID_MAX; n++)
		if (!id_char(s[n], 0))
			return 0;
	return s[n] == '\0';
}
