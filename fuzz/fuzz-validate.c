/*
 * fuzz-validate.c - libFuzzer target for mlc_validate: the input is parsed
 * with mlc_json_parse and checked, whole and partially, against a schema
 * that mirrors the model metadata (lists of objects, bounded integers,
 * strings with choices and a format check, a string-or-boolean).
 *
 * Properties checked: a NULL result comes with at least one well-formed
 * error and a result with none; a full result has every schema field;
 * validating a partial result again gives the same result (so handlers
 * may store normalized bodies and re-read them); and so does validating
 * the result's JSON text parsed again (converted values, such as "1e16"
 * for a number becoming 1e+16, are written as valid JSON that converts
 * to itself).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"
#include "validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const kinds[] = { "classification", "regression", "clustering", NULL };
static const char *const feature_types[] = { "cat", "num", NULL };

/* Optional nested fields are nullable, so that a normalized result
 * (absent -> null) validates again. */
static const struct mlc_field hyper_fields[] = {
	{ .name = "parameter", .type = MLC_V_STR, .flags = MLC_F_REQUIRED, .max_len = 64 },
	{ .name = "value", .type = MLC_V_NUM, .flags = MLC_F_REQUIRED },
	{ .name = NULL }
};
static const struct mlc_field perf_fields[] = {
	{ .name = "metric", .type = MLC_V_STR, .flags = MLC_F_REQUIRED },
	{ .name = "order", .type = MLC_V_INT, .flags = MLC_F_NULLABLE, .has_min = 1, .min = 0 },
	{ .name = "threshold", .type = MLC_V_NUM, .flags = MLC_F_NULLABLE },
	{ .name = NULL }
};
static const struct mlc_field resource_fields[] = {
	{ .name = "resource_name", .type = MLC_V_STR, .flags = MLC_F_REQUIRED },
	{ .name = "value", .type = MLC_V_NUM, .flags = MLC_F_REQUIRED },
	{ .name = "deploy", .type = MLC_V_STR, .flags = MLC_F_NULLABLE },
	{ .name = NULL }
};
static const struct mlc_field feature_fields[] = {
	{ .name = "feature_name", .type = MLC_V_STR, .flags = MLC_F_REQUIRED },
	{ .name = "type", .type = MLC_V_STR, .flags = MLC_F_NULLABLE, .choices = feature_types },
	{ .name = "kind", .type = MLC_V_INT, .flags = MLC_F_NULLABLE, .has_min = 1, .min = 0,
	  .has_max = 1, .max = 1 },
	{ .name = "units", .type = MLC_V_INT, .flags = MLC_F_NULLABLE },
	{ .name = NULL }
};
static const struct mlc_field inference_fields[] = {
	{ .name = "type", .type = MLC_V_STR, .flags = MLC_F_REQUIRED },
	{ .name = "value", .type = MLC_V_STR, .flags = MLC_F_REQUIRED },
	{ .name = NULL }
};
static const struct mlc_field drift_fields[] = {
	{ .name = "is_true", .type = MLC_V_INT, .flags = MLC_F_REQUIRED, .has_min = 1, .min = 0,
	  .has_max = 1, .max = 1 },
	{ .name = "method", .type = MLC_V_INT, .flags = MLC_F_REQUIRED, .has_min = 1, .min = 0,
	  .has_max = 1, .max = 2 },
	{ .name = NULL }
};
static const struct mlc_field placement_fields[] = {
	{ .name = "clusterID", .type = MLC_V_STR, .flags = MLC_F_NULLABLE },
	{ .name = "node", .type = MLC_V_STR, .flags = MLC_F_NULLABLE },
	{ .name = "continuum", .type = MLC_V_STR_OR_BOOL, .flags = MLC_F_NULLABLE, .max_len = 16 },
	{ .name = NULL }
};
static const struct mlc_field model_schema[] = {
	{ .name = "modelname", .type = MLC_V_STR, .flags = MLC_F_REQUIRED, .max_len = 64 },
	{ .name = "modelkind", .type = MLC_V_STR, .flags = MLC_F_REQUIRED, .choices = kinds },
	{ .name = "hyperparameter", .type = MLC_V_LIST, .item = MLC_V_OBJ, .fields = hyper_fields,
	  .max_len = 64 },
	{ .name = "modelperformance", .type = MLC_V_LIST, .item = MLC_V_OBJ, .fields = perf_fields },
	{ .name = "trainingresource", .type = MLC_V_LIST, .item = MLC_V_OBJ, .fields = resource_fields },
	{ .name = "runresource", .type = MLC_V_LIST, .item = MLC_V_OBJ, .fields = resource_fields },
	{ .name = "featurelist", .type = MLC_V_LIST, .item = MLC_V_OBJ, .fields = feature_fields },
	{ .name = "inference", .type = MLC_V_LIST, .item = MLC_V_OBJ, .fields = inference_fields },
	{ .name = "modeltags", .type = MLC_V_LIST, .item = MLC_V_STR, .flags = MLC_F_NULLABLE,
	  .max_len = 32 },
	{ .name = "drift_detection", .type = MLC_V_LIST, .item = MLC_V_OBJ, .fields = drift_fields },
	{ .name = "placement", .type = MLC_V_OBJ, .fields = placement_fields },
	{ .name = "deployment_id", .type = MLC_V_STR, .check = mlc_is_deployment_id },
	{ .name = "explain", .type = MLC_V_BOOL },
	{ .name = "counts", .type = MLC_V_LIST, .item = MLC_V_INT, .has_min = 1, .min = -10,
	  .has_max = 1, .max = 10 },
	{ .name = "data", .type = MLC_V_ANY, .flags = MLC_F_NULLABLE },
	{ .name = NULL }
};
#define NFIELDS (sizeof(model_schema) / sizeof(model_schema[0]) - 1)

/* Each error is {"loc": ["body", key-or-index...], "msg": str, "type": str[, "ctx": {}]}. */
static void check_error(json_object *e)
{
	json_object *loc, *msg, *type, *first;

	if (!json_object_object_get_ex(e, "loc", &loc) || !json_object_is_type(loc, json_type_array) ||
	    !json_object_object_get_ex(e, "msg", &msg) || !json_object_is_type(msg, json_type_string) ||
	    !json_object_object_get_ex(e, "type", &type) || !json_object_is_type(type, json_type_string))
		abort();
	first = json_object_array_get_idx(loc, 0);
	if (!json_object_is_type(first, json_type_string) || strcmp(json_object_get_string(first), "body"))
		abort();
	for (size_t i = 1; i < json_object_array_length(loc); i++) {
		json_object *step = json_object_array_get_idx(loc, i);

		if (!json_object_is_type(step, json_type_string) && !json_object_is_type(step, json_type_int))
			abort();
	}
}

/* Validate in; return the result after checking it against the errors. */
static json_object *run(json_object *in, int partial)
{
	json_object *errors = json_object_new_array();
	json_object *res = mlc_validate(in, model_schema, "body", errors, partial);
	size_t nerr = json_object_array_length(errors);

	if (!res != !!nerr)
		abort();
	for (size_t i = 0; i < nerr; i++)
		check_error(json_object_array_get_idx(errors, i));
	if (res && !partial && (size_t)json_object_object_length(res) != NFIELDS)
		abort();
	json_object_to_json_string(errors);
	json_object_put(errors);
	return res;
}

/* A partial result validates again to itself, as it is and as text. */
static void check_idempotent(json_object *res)
{
	json_object *again = run(res, 1), *reread = NULL, *again2;
	const char *a, *b;
	char msg[256];

	if (!again)
		abort();
	a = json_object_to_json_string_ext(res, JSON_C_TO_STRING_PLAIN);
	b = json_object_to_json_string_ext(again, JSON_C_TO_STRING_PLAIN);
	if (strcmp(a, b)) {
		fprintf(stderr, "not idempotent:\n%s\n%s\n", a, b);
		abort();
	}
	if (mlc_json_parse(a, strlen(a), &reread, msg, sizeof(msg)) < 0) {
		fprintf(stderr, "the result is not valid JSON (%s):\n%s\n", msg, a);
		abort();
	}
	again2 = run(reread, 1);
	if (!again2 || strcmp(a, json_object_to_json_string_ext(again2, JSON_C_TO_STRING_PLAIN))) {
		fprintf(stderr, "not idempotent through its text:\n%s\n%s\n", a,
			again2 ? json_object_to_json_string_ext(again2, JSON_C_TO_STRING_PLAIN) : "NULL");
		abort();
	}
	json_object_put(again2);
	json_object_put(reread);
	json_object_put(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_object *in = NULL, *res;
	char msg[256];

	if (mlc_json_parse((const char *)data, size, &in, msg, sizeof(msg)) < 0)
		return 0;
	res = run(in, 0);
	json_object_put(res);
	res = run(in, 1);
	if (res)
		check_idempotent(res);
	json_object_put(res);
	json_object_put(in);
	return 0;
}
