/*
 * test-validate.c - mlc_validate against a schema shaped like the model
 * metadata: every pydantic v1 message and type, all failures reported at
 * once with their loc paths, partial mode, pydantic 2's lax conversions
 * (hostile inputs included), null handling, and numbers keeping the text
 * they were written with.
 */
#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"
#include "validate.h"
#include "tap.h"

#define PRINT_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static const char *const kinds[] = { "classification", "regression", "clustering", NULL };

/* Deployment ids: [A-Za-z0-9._-]{1,64}. */
static int valid_id(const char *s)
{
	size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-");

	return n > 0 && n <= 64 && s[n] == '\0';
}

static int never(const char *s)
{
	(void)s;
	return 0;
}

static const struct mlc_field hyper_fields[] = {
	{ .name = "parameter", .type = MLC_V_STR, .flags = MLC_F_REQUIRED, .max_len = 16 },
	{ .name = "value", .type = MLC_V_NUM, .flags = MLC_F_REQUIRED },
	{ .name = NULL }
};

static const struct mlc_field drift_fields[] = {
	{ .name = "is_true", .type = MLC_V_INT, .flags = MLC_F_REQUIRED,
	  .has_min = 1, .min = 0, .has_max = 1, .max = 1 },
	{ .name = "method", .type = MLC_V_INT, .flags = MLC_F_REQUIRED,
	  .has_min = 1, .min = 0, .has_max = 1, .max = 2 },
	{ .name = NULL }
};

static const struct mlc_field placement_fields[] = {
	{ .name = "clusterID", .type = MLC_V_STR },
	{ .name = "node", .type = MLC_V_STR },
	{ .name = "continuum", .type = MLC_V_STR_OR_BOOL, .max_len = 8 },
	{ .name = NULL }
};

static const struct mlc_field model_schema[] = {
	{ .name = "modelname", .type = MLC_V_STR, .flags = MLC_F_REQUIRED, .max_len = 10 },
	{ .name = "modelkind", .type = MLC_V_STR, .flags = MLC_F_REQUIRED, .choices = kinds },
	{ .name = "hyperparameter", .type = MLC_V_LIST, .item = MLC_V_OBJ,
	  .fields = hyper_fields, .max_len = 3 },
	{ .name = "modeltags", .type = MLC_V_LIST, .item = MLC_V_STR, .flags = MLC_F_NULLABLE },
	{ .name = "drift_detection", .type = MLC_V_LIST, .item = MLC_V_OBJ, .fields = drift_fields },
	{ .name = "placement", .type = MLC_V_OBJ, .fields = placement_fields },
	{ .name = "deployment_id", .type = MLC_V_STR, .check = valid_id,
	  .check_msg = "deployment_id must match [A-Za-z0-9._-]{1,64}" },
	{ .name = "explain", .type = MLC_V_BOOL },
	{ .name = "inference_data", .type = MLC_V_INT, .has_min = 1, .min = 0, .has_max = 1, .max = 2 },
	{ .name = NULL }
};

/* One field of each kind, none required, for type checks in isolation. */
static const struct mlc_field one_schema[] = {
	{ .name = "s", .type = MLC_V_STR },
	{ .name = "i", .type = MLC_V_INT },
	{ .name = "n", .type = MLC_V_NUM },
	{ .name = "b", .type = MLC_V_BOOL },
	{ .name = "sb", .type = MLC_V_STR_OR_BOOL },
	{ .name = "o", .type = MLC_V_OBJ },
	{ .name = "l", .type = MLC_V_LIST, .item = MLC_V_INT },
	{ .name = "a", .type = MLC_V_ANY },
	{ .name = "an", .type = MLC_V_ANY, .flags = MLC_F_NULLABLE },
	{ .name = "f", .type = MLC_V_STR, .check = never },
	{ .name = "neg", .type = MLC_V_INT, .has_min = 1, .min = -5, .has_max = 1, .max = -1 },
	{ .name = "lb", .type = MLC_V_LIST, .item = MLC_V_INT, .has_min = 1, .min = 0,
	  .has_max = 1, .max = 10, .max_len = 5 },
	{ .name = "lc", .type = MLC_V_LIST, .item = MLC_V_STR, .choices = kinds },
	{ .name = NULL }
};

static json_object *parse(const char *s)
{
	json_object *o = NULL;
	char msg[256];

	if (mlc_json_parse(s, strlen(s), &o, msg, sizeof(msg)) < 0)
		diag("test input does not parse: %s: %s", msg, s);
	return o;
}

static const char *print(json_object *o)
{
	return json_object_to_json_string_ext(o, PRINT_FLAGS);
}

/*
 * Validate body against schema and compare the outcome with want_result
 * (NULL when validation must fail) and want_errors (the whole detail
 * array as JSON).
 */
static void check(const char *title, const struct mlc_field *schema, const char *body,
		  int partial, const char *want_result, const char *want_errors)
{
	json_object *in = parse(body);
	json_object *errors = json_object_new_array();
	json_object *res = mlc_validate(in, schema, "body", errors, partial);

	is_str(res ? print(res) : NULL, want_result, "%s: result", title);
	is_str(print(errors), want_errors, "%s: errors", title);
	json_object_put(res);
	json_object_put(errors);
	json_object_put(in);
}

/* body fails against one_schema with the single error at ["body", key]. */
static void fails_one(const char *title, const char *body, const char *key,
		      const char *msg, const char *type)
{
	char want[512];

	snprintf(want, sizeof(want), "[{\"loc\":[\"body\",\"%s\"],\"msg\":\"%s\",\"type\":\"%s\"}]",
		 key, msg, type);
	check(title, one_schema, body, 1, NULL, want);
}

/* body passes one_schema (partially) and normalizes to want. */
static void passes_one(const char *title, const char *body, const char *want)
{
	check(title, one_schema, body, 1, want, "[]");
}

static void test_required_and_null(void)
{
	check("missing required fields", model_schema, "{}", 0, NULL,
	      "[{\"loc\":[\"body\",\"modelname\"],\"msg\":\"field required\",\"type\":\"value_error.missing\"},"
	      "{\"loc\":[\"body\",\"modelkind\"],\"msg\":\"field required\",\"type\":\"value_error.missing\"}]");
	check("absent optional fields become null, in schema order", model_schema,
	      "{\"modelkind\":\"regression\",\"modelname\":\"m\",\"unknown\":1}", 0,
	      "{\"modelname\":\"m\",\"modelkind\":\"regression\",\"hyperparameter\":null,\"modeltags\":null,"
	      "\"drift_detection\":null,\"placement\":null,\"deployment_id\":null,\"explain\":null,"
	      "\"inference_data\":null}", "[]");
	check("null for a required field", model_schema,
	      "{\"modelname\":null,\"modelkind\":\"regression\"}", 0, NULL,
	      "[{\"loc\":[\"body\",\"modelname\"],\"msg\":\"none is not an allowed value\","
	      "\"type\":\"type_error.none.not_allowed\"}]");
	fails_one("null for an optional field that is not nullable", "{\"i\":null}", "i",
		  "none is not an allowed value", "type_error.none.not_allowed");
	fails_one("null for a non-nullable ANY", "{\"a\":null}", "a",
		  "none is not an allowed value", "type_error.none.not_allowed");
	passes_one("null for a nullable ANY is kept", "{\"an\":null}", "{\"an\":null}");
	check("null for a nullable list is kept", model_schema,
	      "{\"modelname\":\"m\",\"modelkind\":\"regression\",\"modeltags\":null}", 1,
	      "{\"modelname\":\"m\",\"modelkind\":\"regression\",\"modeltags\":null}", "[]");
}

static void test_str(void)
{
	passes_one("a string is kept", "{\"s\":\"x\"}", "{\"s\":\"x\"}");
	fails_one("an integer is not a string", "{\"s\":5}", "s", "str type expected", "type_error.str");
	fails_one("a float is not a string", "{\"s\":0.5}", "s", "str type expected", "type_error.str");
	fails_one("an exponent is not a string", "{\"s\":1e3}", "s", "str type expected", "type_error.str");
	passes_one("an empty string is a string", "{\"s\":\"\"}", "{\"s\":\"\"}");
	passes_one("a numeric string stays a string", "{\"s\":\" 1.50 \"}", "{\"s\":\" 1.50 \"}");
	fails_one("true is not a string", "{\"s\":true}", "s", "str type expected", "type_error.str");
	fails_one("an object is not a string", "{\"s\":{}}", "s", "str type expected", "type_error.str");
	fails_one("a list is not a string", "{\"s\":[\"x\"]}", "s", "str type expected", "type_error.str");
	fails_one("an escaped NUL inside a string", "{\"s\":\"a\\u0000b\"}", "s",
		  "string must not contain NUL characters", "value_error.str.regex");
	fails_one("a failing check without its own message", "{\"f\":\"x\"}", "f",
		  "string does not match the expected format", "value_error.str.regex");
	check("a failing check with its message", model_schema,
	      "{\"deployment_id\":\"a/b\"}", 1, NULL,
	      "[{\"loc\":[\"body\",\"deployment_id\"],\"msg\":\"deployment_id must match [A-Za-z0-9._-]{1,64}\","
	      "\"type\":\"value_error.str.regex\"}]");
	check("a passing check", model_schema, "{\"deployment_id\":\"dep-5678\"}", 1,
	      "{\"deployment_id\":\"dep-5678\"}", "[]");
}

static void test_str_limits(void)
{
	check("a string at max_len", model_schema, "{\"modelname\":\"abcdefghij\"}", 1,
	      "{\"modelname\":\"abcdefghij\"}", "[]");
	check("a string over max_len", model_schema, "{\"modelname\":\"abcdefghijk\"}", 1, NULL,
	      "[{\"loc\":[\"body\",\"modelname\"],\"msg\":\"ensure this value has at most 10 characters\","
	      "\"type\":\"value_error.any_str.max_length\",\"ctx\":{\"limit_value\":10}}]");
	/* max_len counts characters: ten two-byte characters (20 bytes) fit,
	 * eleven do not. */
	check("max_len counts characters, not bytes", model_schema,
	      "{\"modelname\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}", 1,
	      "{\"modelname\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}", "[]");
	check("eleven two-byte characters exceed max_len 10", model_schema,
	      "{\"modelname\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}", 1, NULL,
	      "[{\"loc\":[\"body\",\"modelname\"],\"msg\":\"ensure this value has at most 10 characters\","
	      "\"type\":\"value_error.any_str.max_length\",\"ctx\":{\"limit_value\":10}}]");
	check("a number is refused before max_len is looked at", model_schema,
	      "{\"modelname\":12345678901}", 1, NULL,
	      "[{\"loc\":[\"body\",\"modelname\"],\"msg\":\"str type expected\",\"type\":\"type_error.str\"}]");
	check("a permitted choice", model_schema, "{\"modelkind\":\"clustering\"}", 1,
	      "{\"modelkind\":\"clustering\"}", "[]");
	check("a value outside the choices", model_schema, "{\"modelkind\":\"Regressor\"}", 1, NULL,
	      "[{\"loc\":[\"body\",\"modelkind\"],"
	      "\"msg\":\"unexpected value; permitted: 'classification', 'regression', 'clustering'\","
	      "\"type\":\"value_error.const\",\"ctx\":{\"given\":\"Regressor\","
	      "\"permitted\":[\"classification\",\"regression\",\"clustering\"]}}]");
	check("a number for a field with choices is not a string", model_schema,
	      "{\"modelkind\":5}", 1, NULL,
	      "[{\"loc\":[\"body\",\"modelkind\"],\"msg\":\"str type expected\",\"type\":\"type_error.str\"}]");
	check("choices are case-sensitive", model_schema, "{\"modelkind\":\"Clustering\"}", 1, NULL,
	      "[{\"loc\":[\"body\",\"modelkind\"],"
	      "\"msg\":\"unexpected value; permitted: 'classification', 'regression', 'clustering'\","
	      "\"type\":\"value_error.const\",\"ctx\":{\"given\":\"Clustering\","
	      "\"permitted\":[\"classification\",\"regression\",\"clustering\"]}}]");
}

static void test_int(void)
{
	passes_one("an integer", "{\"i\":42}", "{\"i\":42}");
	passes_one("an integral float becomes an integer", "{\"i\":3.0}", "{\"i\":3}");
	passes_one("an integral exponent becomes an integer", "{\"i\":1e2}", "{\"i\":100}");
	passes_one("a negative integer", "{\"i\":-7}", "{\"i\":-7}");
	passes_one("int64 extremes", "{\"i\":-9223372036854775808}", "{\"i\":-9223372036854775808}");
	fails_one("a fractional float", "{\"i\":3.5}", "i", "value is not a valid integer", "type_error.integer");
	passes_one("true is the integer 1", "{\"i\":true}", "{\"i\":1}");
	passes_one("false is the integer 0", "{\"i\":false}", "{\"i\":0}");
	passes_one("a numeric string is an integer", "{\"i\":\"5\"}", "{\"i\":5}");
	check("a numeric string obeys the bounds", model_schema, "{\"inference_data\":\"3\"}", 1, NULL,
	      "[{\"loc\":[\"body\",\"inference_data\"],\"msg\":\"ensure this value is less than or equal to 2\","
	      "\"type\":\"value_error.number.not_le\",\"ctx\":{\"limit_value\":2}}]");
	check("true obeys the bounds", one_schema, "{\"neg\":true}", 1, NULL,
	      "[{\"loc\":[\"body\",\"neg\"],\"msg\":\"ensure this value is less than or equal to -1\","
	      "\"type\":\"value_error.number.not_le\",\"ctx\":{\"limit_value\":-1}}]");
	fails_one("a list is not an integer", "{\"i\":[1]}", "i", "value is not a valid integer", "type_error.integer");
	check("above uint64's int64 range without a bound", one_schema, "{\"i\":18446744073709551615}", 1, NULL,
	      "[{\"loc\":[\"body\",\"i\"],\"msg\":\"ensure this value is less than or equal to 9223372036854775807\","
	      "\"type\":\"value_error.number.not_le\",\"ctx\":{\"limit_value\":9223372036854775807}}]");
	check("a huge integral float without a bound", one_schema, "{\"i\":-1e300}", 1, NULL,
	      "[{\"loc\":[\"body\",\"i\"],\"msg\":\"ensure this value is greater than or equal to -9223372036854775808\","
	      "\"type\":\"value_error.number.not_ge\",\"ctx\":{\"limit_value\":-9223372036854775808}}]");
	check("below the minimum", model_schema, "{\"inference_data\":-1}", 1, NULL,
	      "[{\"loc\":[\"body\",\"inference_data\"],\"msg\":\"ensure this value is greater than or equal to 0\","
	      "\"type\":\"value_error.number.not_ge\",\"ctx\":{\"limit_value\":0}}]");
	check("above the maximum", model_schema, "{\"inference_data\":3}", 1, NULL,
	      "[{\"loc\":[\"body\",\"inference_data\"],\"msg\":\"ensure this value is less than or equal to 2\","
	      "\"type\":\"value_error.number.not_le\",\"ctx\":{\"limit_value\":2}}]");
	check("a huge float against a maximum", model_schema, "{\"inference_data\":1e300}", 1, NULL,
	      "[{\"loc\":[\"body\",\"inference_data\"],\"msg\":\"ensure this value is less than or equal to 2\","
	      "\"type\":\"value_error.number.not_le\",\"ctx\":{\"limit_value\":2}}]");
	check("the bounds themselves", model_schema, "{\"inference_data\":2.0}", 1,
	      "{\"inference_data\":2}", "[]");
	passes_one("negative bounds: inside", "{\"neg\":-5}", "{\"neg\":-5}");
	check("negative bounds: above", one_schema, "{\"neg\":0}", 1, NULL,
	      "[{\"loc\":[\"body\",\"neg\"],\"msg\":\"ensure this value is less than or equal to -1\","
	      "\"type\":\"value_error.number.not_le\",\"ctx\":{\"limit_value\":-1}}]");
}

static void test_num(void)
{
	passes_one("0.89 stays 0.89", "{\"n\":0.89}", "{\"n\":0.89}");
	passes_one("1e3 stays 1e3", "{\"n\":1e3}", "{\"n\":1e3}");
	passes_one("1.50 keeps its trailing zero", "{\"n\":1.50}", "{\"n\":1.50}");
	passes_one("an integer is a number", "{\"n\":16}", "{\"n\":16}");
	passes_one("a negative exponent", "{\"n\":-2.5E-3}", "{\"n\":-2.5E-3}");
	passes_one("a numeric string is the number", "{\"n\":\"0.89\"}", "{\"n\":0.89}");
	passes_one("true is the number 1.0", "{\"n\":true}", "{\"n\":1.0}");
	fails_one("a word is not a number", "{\"n\":\"high\"}", "n", "value is not a valid float", "type_error.float");
	fails_one("an object is not a number", "{\"n\":{}}", "n", "value is not a valid float", "type_error.float");

	/* The normalized object itself, printed with json-c's default
	 * flags as a handler would. */
	json_object *in = parse("{\"n\":0.89}");
	json_object *errors = json_object_new_array();
	json_object *res = mlc_validate(in, one_schema, "body", errors, 1);
	json_object *n = NULL;

	json_object_object_get_ex(res, "n", &n);
	is_str(json_object_to_json_string(n), "0.89", "json_object_to_json_string prints 0.89 as written");
	json_object_put(in);
	json_object_put(res);
	in = parse("{\"n\":1e3}");
	res = mlc_validate(in, one_schema, "body", errors, 1);
	json_object_object_get_ex(res, "n", &n);
	is_str(json_object_to_json_string(n), "1e3", "json_object_to_json_string prints 1e3 as written");
	is_str(json_object_to_json_string(res), "{ \"n\": 1e3 }", "and so does the whole result");
	json_object_put(in);
	json_object_put(res);
	json_object_put(errors);
}

/*
 * One value for field key of one_schema ("i" int, "n" number, "b" bool,
 * "s" string): it converts to want (JSON text), or (want NULL) it is
 * refused with exactly one error of type err.
 */
static void conv(const char *key, const char *value, const char *want, const char *err)
{
	char body[512], expect[512];
	json_object *in, *errors, *res;

	snprintf(body, sizeof(body), "{\"%s\":%s}", key, value);
	in = parse(body);
	errors = json_object_new_array();
	res = mlc_validate(in, one_schema, "body", errors, 1);
	if (want) {
		snprintf(expect, sizeof(expect), "{\"%s\":%s}", key, want);
		is_str(res ? print(res) : print(errors), expect, "%s: %s becomes %s", key, value, want);
	} else {
		json_object *e = json_object_array_get_idx(errors, 0), *type = NULL;

		if (e)
			json_object_object_get_ex(e, "type", &type);
		if (!ok(!res && json_object_array_length(errors) == 1 && type &&
			!strcmp(json_object_get_string(type), err), "%s: %s is refused (%s)", key, value, err))
			diag("result %s, errors %s", res ? print(res) : "NULL", print(errors));
	}
	json_object_put(res);
	json_object_put(errors);
	json_object_put(in);
}

#define NOT_INT "type_error.integer"
#define NOT_FLOAT "type_error.float"
#define NOT_BOOL "type_error.bool"
#define NOT_STR "type_error.str"
#define NOT_FINITE "value_error.number.not_finite"
#define NOT_LE "value_error.number.not_le"
#define NOT_GE "value_error.number.not_ge"
#define NO_NULL "type_error.none.not_allowed"

/*
 * pydantic 2's lax conversions for JSON input, field type by field type,
 * on the values clients send by mistake or on purpose.
 */
static void test_conversions(void)
{
	static const struct {
		const char *value, *i, *n, *b, *s;	/* want; "!type" = refused */
	} rows[] = {
		/* value               int        number      bool       string */
		{ "\"1\"",             "1",       "1.0",      "true",    "\"1\"" },
		{ "\" 1 \"",           "1",       "1.0",      "!" NOT_BOOL, "\" 1 \"" },
		{ "\"\\t1\\n\"",       "1",       "1.0",      "!" NOT_BOOL, "\"\\t1\\n\"" },
		{ "\"\\u00a01\\u3000\"", "1",     "1.0",      "!" NOT_BOOL, NULL },
		{ "\"1.0\"",           "1",       "1.0",      "!" NOT_BOOL, "\"1.0\"" },
		{ "\"42.000\"",        "42",      "42.0",     "!" NOT_BOOL, NULL },
		{ "\"1.5\"",           "!" NOT_INT, "1.5",    "!" NOT_BOOL, "\"1.5\"" },
		{ "\"1.\"",            "!" NOT_INT, "1.0",    "!" NOT_BOOL, NULL },
		{ "\".5\"",            "!" NOT_INT, "0.5",    "!" NOT_BOOL, NULL },
		{ "\"0.89\"",          "!" NOT_INT, "0.89",   "!" NOT_BOOL, NULL },
		{ "\"-2.5E-3\"",       "!" NOT_INT, "-0.0025", "!" NOT_BOOL, NULL },
		{ "\"1e3\"",           "!" NOT_INT, "1000.0", "!" NOT_BOOL, NULL },
		{ "\"1E-5\"",          "!" NOT_INT, "1e-05",  "!" NOT_BOOL, NULL },
		{ "\"1e16\"",          "!" NOT_INT, "1e+16",  "!" NOT_BOOL, NULL },
		{ "\"1e15\"",          "!" NOT_INT, "1000000000000000.0", "!" NOT_BOOL, NULL },
		{ "\"0.0001\"",        "!" NOT_INT, "0.0001", "!" NOT_BOOL, NULL },
		{ "\"1e-400\"",        "!" NOT_INT, "0.0",    "!" NOT_BOOL, NULL },
		{ "1.0",               "1",       "1.0",      "true",    "!" NOT_STR },
		{ "1.5",               "!" NOT_INT, "1.5",    "!" NOT_BOOL, "!" NOT_STR },
		{ "0",                 "0",       "0",        "false",   "!" NOT_STR },
		{ "2",                 "2",       "2",        "!" NOT_BOOL, "!" NOT_STR },
		{ "-1",                "-1",      "-1",       "!" NOT_BOOL, "!" NOT_STR },
		{ "true",              "1",       "1.0",      "true",    "!" NOT_STR },
		{ "false",             "0",       "0.0",      "false",   "!" NOT_STR },
		{ "\"true\"",          "!" NOT_INT, "!" NOT_FLOAT, "true", "\"true\"" },
		{ "\"False\"",         "!" NOT_INT, "!" NOT_FLOAT, "false", NULL },
		{ "\"yes\"",           "!" NOT_INT, "!" NOT_FLOAT, "true", "\"yes\"" },
		{ "\"OFF\"",           "!" NOT_INT, "!" NOT_FLOAT, "false", NULL },
		{ "\"t\"",             "!" NOT_INT, "!" NOT_FLOAT, "true", NULL },
		{ "\"n\"",             "!" NOT_INT, "!" NOT_FLOAT, "false", NULL },
		{ "\"0\"",             "0",       "0.0",      "false",   NULL },
		{ "\" true\"",         "!" NOT_INT, "!" NOT_FLOAT, "!" NOT_BOOL, NULL },
		{ "\"2\"",             "2",       "2.0",      "!" NOT_BOOL, NULL },
		{ "\"abc\"",           "!" NOT_INT, "!" NOT_FLOAT, "!" NOT_BOOL, "\"abc\"" },
		{ "\"\"",              "!" NOT_INT, "!" NOT_FLOAT, "!" NOT_BOOL, "\"\"" },
		{ "\" \"",             "!" NOT_INT, "!" NOT_FLOAT, "!" NOT_BOOL, NULL },
		{ "\"1e400\"",         "!" NOT_INT, "!" NOT_FINITE, "!" NOT_BOOL, NULL },
		{ "\"-1e400\"",        "!" NOT_INT, "!" NOT_FINITE, "!" NOT_BOOL, NULL },
		{ "\"inf\"",           "!" NOT_INT, "!" NOT_FINITE, "!" NOT_BOOL, NULL },
		{ "\"-Infinity\"",     "!" NOT_INT, "!" NOT_FINITE, "!" NOT_BOOL, NULL },
		{ "\"NaN\"",           "!" NOT_INT, "!" NOT_FINITE, "!" NOT_BOOL, NULL },
		{ "\"infinite\"",      "!" NOT_INT, "!" NOT_FLOAT, "!" NOT_BOOL, NULL },
		{ "\"0x10\"",          "!" NOT_INT, "!" NOT_FLOAT, "!" NOT_BOOL, "\"0x10\"" },
		{ "\"1_000\"",         "1000",    "1000.0",   "!" NOT_BOOL, "\"1_000\"" },
		{ "\"1_000.5\"",       "!" NOT_INT, "1000.5", "!" NOT_BOOL, NULL },
		{ "\"0_42\"",          "42",      "42.0",     "!" NOT_BOOL, NULL },
		{ "\"4_2.0\"",         "42",      "42.0",     "!" NOT_BOOL, NULL },
		{ "\" 1_000 \"",       "1000",    "!" NOT_FLOAT, "!" NOT_BOOL, NULL },
		{ "\"1__000\"",        "!" NOT_INT, "!" NOT_FLOAT, "!" NOT_BOOL, NULL },
		{ "\"_1\"",            "!" NOT_INT, "!" NOT_FLOAT, "!" NOT_BOOL, NULL },
		{ "\"1_\"",            "!" NOT_INT, "!" NOT_FLOAT, "!" NOT_BOOL, NULL },
		{ "\"1 000\"",         "!" NOT_INT, "!" NOT_FLOAT, "!" NOT_BOOL, NULL },
		{ "\"01\"",            "1",       "1.0",      "!" NOT_BOOL, NULL },
		{ "\"-01\"",           "-1",      "-1.0",     "!" NOT_BOOL, NULL },
		{ "\"-0_1.00\"",       "-1",      "-1.0",     "!" NOT_BOOL, NULL },
		{ "\"0-1\"",           "!" NOT_INT, "!" NOT_FLOAT, "!" NOT_BOOL, NULL },
		{ "\"+5\"",            "5",       "5.0",      "!" NOT_BOOL, NULL },
		{ "\"-0\"",            "0",       "-0.0",     "!" NOT_BOOL, NULL },
		{ "\"+-1\"",           "!" NOT_INT, "!" NOT_FLOAT, "!" NOT_BOOL, NULL },
		{ "\"--1\"",           "!" NOT_INT, "!" NOT_FLOAT, "!" NOT_BOOL, NULL },
		{ "\"1e\"",            "!" NOT_INT, "!" NOT_FLOAT, "!" NOT_BOOL, NULL },
		{ "\".\"",             "!" NOT_INT, "!" NOT_FLOAT, "!" NOT_BOOL, NULL },
		{ "\"1.0.0\"",         "!" NOT_INT, "!" NOT_FLOAT, "!" NOT_BOOL, NULL },
		{ "\"1\\u0000\"",      "!" NOT_INT, "!" NOT_FLOAT, "!" NOT_BOOL, "!value_error.str.regex" },
		{ "\"\\u0661\"",       "!" NOT_INT, "!" NOT_FLOAT, "!" NOT_BOOL, NULL },	/* Arabic-Indic 1 */
		{ "\"\\uff11\"",       "!" NOT_INT, "!" NOT_FLOAT, "!" NOT_BOOL, NULL },	/* fullwidth 1 */
		{ "\"123456789012345678\"", "123456789012345678", "1.2345678901234568e+17", "!" NOT_BOOL, NULL },
		{ "\"9223372036854775807\"", "9223372036854775807", "9.223372036854776e+18", "!" NOT_BOOL, NULL },
		{ "\"9223372036854775808\"", "!" NOT_LE, "9.223372036854776e+18", "!" NOT_BOOL, NULL },
		{ "\"-9223372036854775808\"", "-9223372036854775808", "-9.223372036854776e+18", "!" NOT_BOOL, NULL },
		{ "\"-9223372036854775809\"", "!" NOT_GE, NULL, "!" NOT_BOOL, NULL },
		{ "\"99999999999999999999999999999999\"", "!" NOT_LE, "1e+32", "!" NOT_BOOL, NULL },
		{ "9223372036854775808", "!" NOT_LE, "9223372036854775808", "!" NOT_BOOL, "!" NOT_STR },
		{ "18446744073709551615", "!" NOT_LE, "18446744073709551615", "!" NOT_BOOL, "!" NOT_STR },
		{ "-9223372036854775808", "-9223372036854775808", "-9223372036854775808", "!" NOT_BOOL, "!" NOT_STR },
		{ "1e300",             "!" NOT_LE, "1e300",   "!" NOT_BOOL, "!" NOT_STR },
		{ "1e-300",            "!" NOT_INT, "1e-300", "!" NOT_BOOL, "!" NOT_STR },
		{ "null",              "!" NO_NULL, "!" NO_NULL, "!" NO_NULL, "!" NO_NULL },
		{ "[]",                "!" NOT_INT, "!" NOT_FLOAT, "!" NOT_BOOL, "!" NOT_STR },
		{ "[1]",               "!" NOT_INT, "!" NOT_FLOAT, "!" NOT_BOOL, "!" NOT_STR },
		{ "{}",                "!" NOT_INT, "!" NOT_FLOAT, "!" NOT_BOOL, "!" NOT_STR },
		{ "{\"a\":1}",         "!" NOT_INT, "!" NOT_FLOAT, "!" NOT_BOOL, "!" NOT_STR },
	};
	static const char *const keys[] = { "i", "n", "b", "s" };

	for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
		const char *want[] = { rows[r].i, rows[r].n, rows[r].b, rows[r].s };

		for (size_t k = 0; k < 4; k++) {
			if (!want[k])
				continue;
			if (want[k][0] == '!')
				conv(keys[k], rows[r].value, NULL, want[k] + 1);
			else
				conv(keys[k], rows[r].value, want[k], NULL);
		}
	}

	/* A JSON number the parser cannot hold never reaches validation. */
	json_object *o = NULL;
	char msg[128];

	ok(mlc_json_parse("{\"i\":1e400}", 11, &o, msg, sizeof(msg)) < 0 && !o,
	   "1e400 as a JSON number is refused by the parser");
	ok(mlc_json_parse("{\"i\":99999999999999999999}", 26, &o, msg, sizeof(msg)) < 0 && !o,
	   "an integer beyond uint64 is refused by the parser");
	check("the refusal of a bad integer string names no converted value", one_schema,
	      "{\"i\":\"12abc\"}", 1, NULL,
	      "[{\"loc\":[\"body\",\"i\"],\"msg\":\"value is not a valid integer\",\"type\":\"type_error.integer\"}]");
	check("a float string that is not finite", one_schema, "{\"n\":\"inf\"}", 1, NULL,
	      "[{\"loc\":[\"body\",\"n\"],\"msg\":\"ensure this value is a finite number\","
	      "\"type\":\"value_error.number.not_finite\"}]");
	check("a huge integer string against a maximum", model_schema, "{\"inference_data\":\"1e400\"}", 1, NULL,
	      "[{\"loc\":[\"body\",\"inference_data\"],\"msg\":\"value is not a valid integer\","
	      "\"type\":\"type_error.integer\"}]");
	check("a long digit string against a maximum", model_schema,
	      "{\"inference_data\":\"00000000000000000000000000000000001\"}", 1, "{\"inference_data\":1}", "[]");
}

/*
 * A converted result printed, parsed again and validated again gives the
 * same text: converted floats are written as valid JSON.
 */
static void test_converted_round_trip(void)
{
	static const char *const bodies[] = {
		"{\"n\":\"0.89\",\"i\":\" 7 \",\"b\":\"yes\"}",
		"{\"n\":\"1e16\"}", "{\"n\":\"-0\"}", "{\"n\":\"5e-324\"}", "{\"n\":\"1.7976931348623157e308\"}",
		"{\"n\":\"0.1\"}", "{\"n\":\"123456.789e3\"}", "{\"n\":true}", "{\"n\":\"2.5e-5\"}",
	};

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		json_object *in = parse(bodies[i]), *errors = json_object_new_array();
		json_object *res = mlc_validate(in, one_schema, "body", errors, 1), *again = NULL, *res2;
		char *text = strdup(res ? print(res) : "null");

		again = parse(text);
		res2 = again ? mlc_validate(again, one_schema, "body", errors, 1) : NULL;
		is_str(res2 ? print(res2) : NULL, text, "%s converts to JSON that validates to itself", bodies[i]);
		free(text);
		json_object_put(res2);
		json_object_put(again);
		json_object_put(res);
		json_object_put(errors);
		json_object_put(in);
	}
}

static void test_bool_and_str_or_bool(void)
{
	passes_one("true", "{\"b\":true}", "{\"b\":true}");
	passes_one("false", "{\"b\":false}", "{\"b\":false}");
	passes_one("1 is true", "{\"b\":1}", "{\"b\":true}");
	passes_one("\"true\" is true", "{\"b\":\"true\"}", "{\"b\":true}");
	fails_one("2 is not a boolean", "{\"b\":2}", "b", "value could not be parsed to a boolean", "type_error.bool");
	fails_one("\"maybe\" is not a boolean", "{\"b\":\"maybe\"}", "b",
		  "value could not be parsed to a boolean", "type_error.bool");
	passes_one("string or boolean: a string", "{\"sb\":\"Edge\"}", "{\"sb\":\"Edge\"}");
	passes_one("string or boolean: a boolean", "{\"sb\":false}", "{\"sb\":false}");
	fails_one("string or boolean: a number", "{\"sb\":5}", "sb",
		  "value is not a valid string or boolean", "type_error.str");
	passes_one("string or boolean: 1 is true", "{\"sb\":1}", "{\"sb\":true}");
	passes_one("string or boolean: 0.0 is false", "{\"sb\":0.0}", "{\"sb\":false}");
	passes_one("string or boolean: the string \"true\" stays a string", "{\"sb\":\"true\"}",
		   "{\"sb\":\"true\"}");
	fails_one("string or boolean: 0.5", "{\"sb\":0.5}", "sb",
		  "value is not a valid string or boolean", "type_error.str");
	fails_one("string or boolean: a list", "{\"sb\":[]}", "sb",
		  "value is not a valid string or boolean", "type_error.str");
	check("string or boolean: the string obeys max_len", model_schema,
	      "{\"placement\":{\"continuum\":\"very-far-edge\"}}", 1, NULL,
	      "[{\"loc\":[\"body\",\"placement\",\"continuum\"],\"msg\":\"ensure this value has at most 8 characters\","
	      "\"type\":\"value_error.any_str.max_length\",\"ctx\":{\"limit_value\":8}}]");
}

static void test_obj_and_list(void)
{
	fails_one("a list is not a dict", "{\"o\":[]}", "o", "value is not a valid dict", "type_error.dict");
	fails_one("a string is not a dict", "{\"o\":\"x\"}", "o", "value is not a valid dict", "type_error.dict");
	passes_one("an object without .fields is kept as is", "{\"o\":{\"x\":[1,{\"y\":null}]}}",
		   "{\"o\":{\"x\":[1,{\"y\":null}]}}");
	fails_one("an object is not a list", "{\"l\":{}}", "l", "value is not a valid list", "type_error.list");
	fails_one("a string is not a list", "{\"l\":\"abc\"}", "l", "value is not a valid list", "type_error.list");
	passes_one("an empty list", "{\"l\":[]}", "{\"l\":[]}");
	passes_one("list items are normalized", "{\"l\":[1,2.0,3]}", "{\"l\":[1,2,3]}");
	check("every bad item is reported with its index", one_schema, "{\"l\":[1,\"x\",2,null,3.5]}", 1, NULL,
	      "[{\"loc\":[\"body\",\"l\",1],\"msg\":\"value is not a valid integer\",\"type\":\"type_error.integer\"},"
	      "{\"loc\":[\"body\",\"l\",3],\"msg\":\"none is not an allowed value\",\"type\":\"type_error.none.not_allowed\"},"
	      "{\"loc\":[\"body\",\"l\",4],\"msg\":\"value is not a valid integer\",\"type\":\"type_error.integer\"}]");
	check("a list of strings refuses numbers", model_schema, "{\"modeltags\":[\"fast\",5,0.5,\"\"]}", 1,
	      NULL,
	      "[{\"loc\":[\"body\",\"modeltags\",1],\"msg\":\"str type expected\",\"type\":\"type_error.str\"},"
	      "{\"loc\":[\"body\",\"modeltags\",2],\"msg\":\"str type expected\",\"type\":\"type_error.str\"}]");
	passes_one("list items are converted", "{\"l\":[\"1\",true,\" 2 \",3.0]}", "{\"l\":[1,1,2,3]}");
	check("a list at max_len", model_schema,
	      "{\"hyperparameter\":[{\"parameter\":\"a\",\"value\":1},{\"parameter\":\"b\",\"value\":2},"
	      "{\"parameter\":\"c\",\"value\":3}]}", 1,
	      "{\"hyperparameter\":[{\"parameter\":\"a\",\"value\":1},{\"parameter\":\"b\",\"value\":2},"
	      "{\"parameter\":\"c\",\"value\":3}]}", "[]");
	check("a list over max_len is refused before its items are checked", model_schema,
	      "{\"hyperparameter\":[1,2,3,4]}", 1, NULL,
	      "[{\"loc\":[\"body\",\"hyperparameter\"],\"msg\":\"ensure this value has at most 3 items\","
	      "\"type\":\"value_error.list.max_items\",\"ctx\":{\"limit_value\":3}}]");
	check("items of a list of objects that are not objects", model_schema,
	      "{\"drift_detection\":[{\"is_true\":1,\"method\":0},5,[],null]}", 1, NULL,
	      "[{\"loc\":[\"body\",\"drift_detection\",1],\"msg\":\"value is not a valid dict\",\"type\":\"type_error.dict\"},"
	      "{\"loc\":[\"body\",\"drift_detection\",2],\"msg\":\"value is not a valid dict\",\"type\":\"type_error.dict\"},"
	      "{\"loc\":[\"body\",\"drift_detection\",3],\"msg\":\"none is not an allowed value\","
	      "\"type\":\"type_error.none.not_allowed\"}]");
	check("nested objects: absent optional fields become null, unknown keys go", model_schema,
	      "{\"placement\":{\"node\":\"n1\",\"zone\":\"x\"}}", 1,
	      "{\"placement\":{\"clusterID\":null,\"node\":\"n1\",\"continuum\":null}}", "[]");
	check("list items obey the field's bounds", one_schema, "{\"lb\":[0,11,10,-1]}", 1, NULL,
	      "[{\"loc\":[\"body\",\"lb\",1],\"msg\":\"ensure this value is less than or equal to 10\","
	      "\"type\":\"value_error.number.not_le\",\"ctx\":{\"limit_value\":10}},"
	      "{\"loc\":[\"body\",\"lb\",3],\"msg\":\"ensure this value is greater than or equal to 0\","
	      "\"type\":\"value_error.number.not_ge\",\"ctx\":{\"limit_value\":0}}]");
	check("list max_len counts items, not the items' length", one_schema, "{\"lb\":[1,2,3,4,5,6]}", 1, NULL,
	      "[{\"loc\":[\"body\",\"lb\"],\"msg\":\"ensure this value has at most 5 items\","
	      "\"type\":\"value_error.list.max_items\",\"ctx\":{\"limit_value\":5}}]");
	check("list items obey the field's choices", one_schema, "{\"lc\":[\"regression\",\"x\"]}", 1, NULL,
	      "[{\"loc\":[\"body\",\"lc\",1],"
	      "\"msg\":\"unexpected value; permitted: 'classification', 'regression', 'clustering'\","
	      "\"type\":\"value_error.const\",\"ctx\":{\"given\":\"x\","
	      "\"permitted\":[\"classification\",\"regression\",\"clustering\"]}}]");
	passes_one("ANY keeps any value", "{\"a\":[1,\"x\",{\"k\":0.10}]}", "{\"a\":[1,\"x\",{\"k\":0.10}]}");
}

static void test_many_failures(void)
{
	check("all failures at once, with nested locs and indices", model_schema,
	      "{\"modelkind\":\"Regressor\","
	      "\"hyperparameter\":[{\"parameter\":\"alpha\",\"value\":0.89},{\"parameter\":true,\"value\":\"high\"},7],"
	      "\"modeltags\":[\"ok\",false],"
	      "\"drift_detection\":[{\"is_true\":2},{\"is_true\":1,\"method\":1.5}],"
	      "\"placement\":{\"clusterID\":\"*\",\"node\":\"*\",\"continuum\":3},"
	      "\"explain\":\"maybe\",\"inference_data\":\"1\"}", 0, NULL,
	      "[{\"loc\":[\"body\",\"modelname\"],\"msg\":\"field required\",\"type\":\"value_error.missing\"},"
	      "{\"loc\":[\"body\",\"modelkind\"],"
	      "\"msg\":\"unexpected value; permitted: 'classification', 'regression', 'clustering'\","
	      "\"type\":\"value_error.const\",\"ctx\":{\"given\":\"Regressor\","
	      "\"permitted\":[\"classification\",\"regression\",\"clustering\"]}},"
	      "{\"loc\":[\"body\",\"hyperparameter\",1,\"parameter\"],\"msg\":\"str type expected\",\"type\":\"type_error.str\"},"
	      "{\"loc\":[\"body\",\"hyperparameter\",1,\"value\"],\"msg\":\"value is not a valid float\",\"type\":\"type_error.float\"},"
	      "{\"loc\":[\"body\",\"hyperparameter\",2],\"msg\":\"value is not a valid dict\",\"type\":\"type_error.dict\"},"
	      "{\"loc\":[\"body\",\"modeltags\",1],\"msg\":\"str type expected\",\"type\":\"type_error.str\"},"
	      "{\"loc\":[\"body\",\"drift_detection\",0,\"is_true\"],\"msg\":\"ensure this value is less than or equal to 1\","
	      "\"type\":\"value_error.number.not_le\",\"ctx\":{\"limit_value\":1}},"
	      "{\"loc\":[\"body\",\"drift_detection\",0,\"method\"],\"msg\":\"field required\",\"type\":\"value_error.missing\"},"
	      "{\"loc\":[\"body\",\"drift_detection\",1,\"method\"],\"msg\":\"value is not a valid integer\","
	      "\"type\":\"type_error.integer\"},"
	      "{\"loc\":[\"body\",\"placement\",\"continuum\"],\"msg\":\"value is not a valid string or boolean\","
	      "\"type\":\"type_error.str\"},"
	      "{\"loc\":[\"body\",\"explain\"],\"msg\":\"value could not be parsed to a boolean\",\"type\":\"type_error.bool\"}]");
	check("the documented example validates and keeps 0.89", model_schema,
	      "{\"modelname\":\"Ridge\",\"modelkind\":\"regression\","
	      "\"hyperparameter\":[{\"parameter\":\"string\",\"value\":0}],"
	      "\"modeltags\":[\"regression\",\"fast\"],"
	      "\"drift_detection\":[{\"is_true\":1,\"method\":0}],"
	      "\"placement\":{\"clusterID\":\"*\",\"node\":\"*\",\"continuum\":true},"
	      "\"modelperformance\":[{\"metric\":\"Accuracy\",\"order\":1,\"threshold\":0.89}]}", 0,
	      "{\"modelname\":\"Ridge\",\"modelkind\":\"regression\","
	      "\"hyperparameter\":[{\"parameter\":\"string\",\"value\":0}],"
	      "\"modeltags\":[\"regression\",\"fast\"],"
	      "\"drift_detection\":[{\"is_true\":1,\"method\":0}],"
	      "\"placement\":{\"clusterID\":\"*\",\"node\":\"*\",\"continuum\":true},"
	      "\"deployment_id\":null,\"explain\":null,\"inference_data\":null}", "[]");
}

static void test_partial(void)
{
	check("partial: an empty body is fine and stays empty", model_schema, "{}", 1, "{}", "[]");
	check("partial: only the fields present, in schema order", model_schema,
	      "{\"modeltags\":[\"updated-tag\"],\"drift_detection\":[{\"is_true\":1,\"method\":1}]}", 1,
	      "{\"modeltags\":[\"updated-tag\"],\"drift_detection\":[{\"is_true\":1,\"method\":1}]}", "[]");
	check("partial: a present null is still checked", model_schema, "{\"modelname\":null}", 1, NULL,
	      "[{\"loc\":[\"body\",\"modelname\"],\"msg\":\"none is not an allowed value\","
	      "\"type\":\"type_error.none.not_allowed\"}]");
	check("partial: nested objects still need their required fields", model_schema,
	      "{\"drift_detection\":[{}]}", 1, NULL,
	      "[{\"loc\":[\"body\",\"drift_detection\",0,\"is_true\"],\"msg\":\"field required\","
	      "\"type\":\"value_error.missing\"},"
	      "{\"loc\":[\"body\",\"drift_detection\",0,\"method\"],\"msg\":\"field required\","
	      "\"type\":\"value_error.missing\"}]");
	check("partial: nested absent optional fields still become null", model_schema,
	      "{\"placement\":{}}", 1,
	      "{\"placement\":{\"clusterID\":null,\"node\":null,\"continuum\":null}}", "[]");
}

static void test_not_an_object(void)
{
	const char *want = "[{\"loc\":[\"body\"],\"msg\":\"value is not a valid dict\",\"type\":\"type_error.dict\"}]";

	check("a list body", model_schema, "[{\"modelname\":\"m\"}]", 0, NULL, want);
	check("a null body", model_schema, "null", 0, NULL, want);
	check("a string body", model_schema, "\"modelname\"", 0, NULL, want);
	check("a number body", model_schema, "0", 1, NULL, want);

	json_object *errors = json_object_new_array();

	ok(mlc_validate(NULL, model_schema, "query", errors, 0) == NULL, "loc0 names the outer loc: refused");
	is_str(print(errors), "[{\"loc\":[\"query\"],\"msg\":\"value is not a valid dict\",\"type\":\"type_error.dict\"}]",
	       "loc0 names the outer loc: error");
	json_object_put(errors);

	json_object *in = parse("{\"i\":\"x\"}");

	ok(mlc_validate(in, one_schema, "body", NULL, 0) == NULL, "without an errors array failures still fail");
	json_object_put(in);
}

static void test_errors_accumulate(void)
{
	json_object *errors = json_object_new_array();
	json_object *in = parse("{\"i\":\"x\"}");

	mlc_validate_error(errors, "model not found", "value_error.not_found", "path", "model_id", NULL);
	mlc_validate_error(errors, "no loc", "value_error", NULL);
	ok(mlc_validate(in, one_schema, "body", errors, 1) == NULL, "validation after manual entries fails");
	is_str(print(errors),
	       "[{\"loc\":[\"path\",\"model_id\"],\"msg\":\"model not found\",\"type\":\"value_error.not_found\"},"
	       "{\"loc\":[],\"msg\":\"no loc\",\"type\":\"value_error\"},"
	       "{\"loc\":[\"body\",\"i\"],\"msg\":\"value is not a valid integer\",\"type\":\"type_error.integer\"}]",
	       "mlc_validate_error entries and validation errors share one array, in order");
	json_object_put(in);
	json_object_put(errors);

	/* The input is not changed by validation. */
	in = parse("{\"i\":\"3.0\",\"s\":\"5\",\"n\":\"16\",\"b\":\"on\",\"x\":1}");
	errors = json_object_new_array();
	json_object *res = mlc_validate(in, one_schema, "body", errors, 1);

	is_str(print(in), "{\"i\":\"3.0\",\"s\":\"5\",\"n\":\"16\",\"b\":\"on\",\"x\":1}",
	       "the input is left as it was");
	is_str(print(res), "{\"s\":\"5\",\"i\":3,\"n\":16.0,\"b\":true}", "while the result is converted");
	json_object_put(res);
	json_object_put(in);
	json_object_put(errors);
}

int main(void)
{
	test_required_and_null();
	test_str();
	test_str_limits();
	test_int();
	test_num();
	test_conversions();
	test_converted_round_trip();
	test_bool_and_str_or_bool();
	test_obj_and_list();
	test_many_failures();
	test_partial();
	test_not_an_object();
	test_errors_accumulate();
	return done_testing();
}
