/*
 * runtime_answer.c - checking what a model runtime answers to POST /predict
 * (see runtime_answer.h).
 *
 * json-c asserts when an object function is used on a non-object or an
 * array function on a non-array: every value here is type-checked before
 * any such call, which is what keeps a hostile answer from ending the
 * worker.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mlc.h"
#include "jsonutil.h"
#include "runtime_answer.h"

/* A value's type in words, for messages. */
static const char *kind(json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null: return "null";
	case json_type_boolean: return "a boolean";
	case json_type_double:
	case json_type_int: return "a number";
	case json_type_string: return "a string";
	case json_type_array: return "a list";
	case json_type_object: return "an object";
	}
	return "a value of unknown type";
}

__attribute__((format(printf, 3, 4)))
static json_object *refuse(char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
	mlc_utf8_trim(msg);
	return NULL;
}

static int is_scalar(json_object *v)
{
	return !v || json_object_is_type(v, json_type_boolean) ||
	       json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double) ||
	       json_object_is_type(v, json_type_string);
}

static int is_number_or_null(json_object *v)
{
	return !v || json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
}

static const char *plural(size_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

/*
 * A list of scalars, each accepted by ok.  Returns NULL when it is one,
 * else a description (in buf) of the first item that is not.
 */
static const char *bad_items(json_object *list, int (*ok)(json_object *), char *buf, size_t cap)
{
	size_t i, n = json_object_array_length(list);

	for (i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(list, i);

		if (!ok(v)) {
			snprintf(buf, cap, "item %zu is %s", i, kind(v));
			return buf;
		}
	}
	return NULL;
}

/* One value per row: a scalar, or a list of scalars (several outputs). */
static json_object *check_prediction(json_object *a, size_t rows, char *msg, size_t msglen)
{
	json_object *pred;
	size_t i, n;
	char why[64];

	if (!json_object_object_get_ex(a, "prediction", &pred))
		return refuse(msg, msglen, "the answer has no prediction");
	if (!json_object_is_type(pred, json_type_array))
		return refuse(msg, msglen, "prediction is %s, not a list", kind(pred));
	n = json_object_array_length(pred);
	if (n != rows)
		return refuse(msg, msglen, "prediction has %zu %s for %zu %s", n,
			      plural(n, "value", "values"), rows, plural(rows, "row", "rows"));
	for (i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(pred, i);

		if (is_scalar(v))
			continue;
		if (!json_object_is_type(v, json_type_array))
			return refuse(msg, msglen, "prediction %zu is %s; a row's prediction is a "
				      "number, a string, a boolean, null or a list of those", i, kind(v));
		if (bad_items(v, is_scalar, why, sizeof(why)))
			return refuse(msg, msglen, "prediction %zu is a list whose %s; a row's "
				      "prediction is a number, a string, a boolean, null or a list "
				      "of those", i, why);
	}
	return a;
}

/* The rows a runtime read from a data link's CSV. */
static int check_data(json_object *a, size_t *rows, char *msg, size_t msglen)
{
	json_object *data;
	size_t i, n;
	char why[64];

	if (!json_object_object_get_ex(a, "data", &data)) {
		refuse(msg, msglen, "the answer has no data (the rows read from the CSV)");
		return -1;
	}
	if (!json_object_is_type(data, json_type_array)) {
		refuse(msg, msglen, "data is %s, not a list of rows", kind(data));
		return -1;
	}
	n = json_object_array_length(data);
	for (i = 0; i < n; i++) {
		json_object *row = json_object_array_get_idx(data, i);

		if (!json_object_is_type(row, json_type_array)) {
			refuse(msg, msglen, "data row %zu is %s, not a list", i, kind(row));
			return -1;
		}
		if (bad_items(row, is_scalar, why, sizeof(why))) {
			refuse(msg, msglen, "data row %zu: %s, not a number, a string, a boolean or null",
			       i, why);
			return -1;
		}
	}
	*rows = n;
	return 0;
}

static int is_number_list(json_object *v)
{
	char why[64];

	return json_object_is_type(v, json_type_array) &&
	       !bad_items(v, is_number_or_null, why, sizeof(why));
}

static int is_string(json_object *v)
{
	return json_object_is_type(v, json_type_string);
}

static int is_number_or_string(json_object *v)
{
	return is_number_or_null(v) || is_string(v);
}

/* The per-row entries of an explanation and what each item must be. */
static const struct {
	const char *key;
	int (*ok)(json_object *);
	const char *what;
} per_row[] = {
	{ "feature_importance", is_number_list, "a list of numbers" },
	{ "base_value", is_number_or_null, "a number" },
	{ "output", is_number_or_string, "a string or a number" },
	{ "output_value", is_number_or_null, "a number" },
	{ "error_bound", is_number_or_null, "a number" },
};

static int check_explanation(json_object *a, int asked, size_t rows, char *msg, size_t msglen)
{
	static const char *const strings[] = { "method", "algorithm" };
	json_object *ex, *v;
	size_t i, j, n;
	char why[64];

	if (!json_object_object_get_ex(a, "explanation", &ex)) {
		if (asked)
			refuse(msg, msglen, "the answer has no explanation");
		return asked ? -1 : 0;
	}
	if (!ex && !asked)
		return 0;	/* null where none was asked for: nothing to use */
	if (!json_object_is_type(ex, json_type_object)) {
		refuse(msg, msglen, "explanation is %s, not an object", kind(ex));
		return -1;
	}
	for (i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
		if (json_object_object_get_ex(ex, strings[i], &v) && !is_string(v)) {
			refuse(msg, msglen, "explanation.%s is %s, not a string", strings[i], kind(v));
			return -1;
		}
	}
	if (json_object_object_get_ex(ex, "feature_names", &v) && v &&
	    (!json_object_is_type(v, json_type_array) || bad_items(v, is_string, why, sizeof(why)))) {
		refuse(msg, msglen, "explanation.feature_names is not a list of strings");
		return -1;
	}
	for (i = 0; i < sizeof(per_row) / sizeof(per_row[0]); i++) {
		if (!json_object_object_get_ex(ex, per_row[i].key, &v))
			continue;
		if (!json_object_is_type(v, json_type_array)) {
			refuse(msg, msglen, "explanation.%s is %s, not a list with one item per row",
			       per_row[i].key, kind(v));
			return -1;
		}
		n = json_object_array_length(v);
		if (n != rows) {
			refuse(msg, msglen, "explanation.%s has %zu %s for %zu %s", per_row[i].key, n,
			       plural(n, "item", "items"), rows, plural(rows, "row", "rows"));
			return -1;
		}
		for (j = 0; j < n; j++) {
			json_object *item = json_object_array_get_idx(v, j);

			if (!per_row[i].ok(item)) {
				refuse(msg, msglen, "explanation.%s item %zu is %s, not %s",
				       per_row[i].key, j, kind(item), per_row[i].what);
				return -1;
			}
		}
	}
	return 0;
}

json_object *mlc_runtime_answer(const char *buf, size_t len, const struct mlc_rt_call *call,
				char *msg, size_t msglen)
{
	json_object *a = NULL;
	char why[256];
	size_t rows = call->rows, i;

	for (i = 0; i < len && buf[i] && strchr(" \t\r\n", buf[i]); i++)
		;
	if (i == len)
		return refuse(msg, msglen, "the answer is empty");
	if (mlc_json_parse(buf, len, &a, why, sizeof(why)) < 0)
		return refuse(msg, msglen, "the answer is not valid JSON: %s",
			      strncmp(why, "invalid JSON ", 13) ? why : why + 13);
	if (!json_object_is_type(a, json_type_object)) {
		refuse(msg, msglen, "the answer is %s, not an object", kind(a));
		json_object_put(a);
		return NULL;
	}
	if ((call->data_link && check_data(a, &rows, msg, msglen) < 0) ||
	    !check_prediction(a, rows, msg, msglen) ||
	    check_explanation(a, call->explain, rows, msg, msglen) < 0)
		goto bad;
	return a;
bad:
	json_object_put(a);
	return NULL;
}

void mlc_runtime_detail(const char *buf, size_t len, char *out, size_t outlen)
{
	json_object *a = NULL, *d;
	char why[256];
	size_t i;

	for (i = 0; buf && i < len && buf[i] && strchr(" \t\r\n", buf[i]); i++)
		;
	if (!buf || i == len)
		snprintf(out, outlen, "no detail");
	else if (mlc_json_parse(buf, len, &a, why, sizeof(why)) < 0)
		snprintf(out, outlen, "the answer is not JSON");
	else if (!json_object_is_type(a, json_type_object) ||
		 !json_object_object_get_ex(a, "detail", &d) || !d)
		snprintf(out, outlen, "no detail");
	else if (json_object_is_type(d, json_type_string))
		snprintf(out, outlen, "%s", json_object_get_string(d));
	else
		snprintf(out, outlen, "%s", json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN));
	mlc_utf8_trim(out);
	json_object_put(a);
}
