/*
 * featurelist.c - a model's input features (see featurelist.h).
 */
#include <stdio.h>
#include <string.h>

#include "featurelist.h"

/* Whether a featurelist entry's kind makes it an input: absent, null or 0. */
static int input_kind(json_object *item)
{
	json_object *kind;

	if (!json_object_object_get_ex(item, "kind", &kind) || !kind)
		return 1;
	if (json_object_is_type(kind, json_type_int))
		return json_object_get_int64(kind) == 0;
	return json_object_is_type(kind, json_type_double) && json_object_get_double(kind) == 0.0;
}

static json_object *string_member(json_object *item, const char *key)
{
	json_object *v = NULL;

	json_object_object_get_ex(item, key, &v);
	return json_object_is_type(v, json_type_string) ? v : NULL;
}

void mlc_features_of(json_object *featurelist, struct mlc_features *f)
{
	json_object *seen;
	size_t i, n;

	f->names = json_object_new_array();
	f->types = json_object_new_array();
	f->n = 0;
	f->named = 0;
	f->why[0] = '\0';
	if (!featurelist) {
		snprintf(f->why, sizeof(f->why), "the model has no featurelist");
		return;
	}
	if (!json_object_is_type(featurelist, json_type_array)) {
		snprintf(f->why, sizeof(f->why), "the model's featurelist is not a list");
		return;
	}
	/* Names met so far, as the keys of an object: linear, not n^2. */
	seen = json_object_new_object();
	n = json_object_array_length(featurelist);
	for (i = 0; i < n; i++) {
		json_object *item = json_object_array_get_idx(featurelist, i), *name;

		if (!json_object_is_type(item, json_type_object) || !input_kind(item))
			continue;
		if (f->n == MLC_FEATURES_MAX) {
			snprintf(f->why, sizeof(f->why), "its featurelist has more than %d input features",
				 MLC_FEATURES_MAX);
			json_object_put(f->names);
			json_object_put(f->types);
			f->names = json_object_new_array();
			f->types = json_object_new_array();
			f->n = 0;
			break;
		}
		name = string_member(item, "feature_name");
		if (name && !json_object_get_string_len(name))
			name = NULL;	/* "" names nothing */
		if (!name && !f->why[0])
			snprintf(f->why, sizeof(f->why), "its featurelist entry %zu is an input "
				 "(kind 0) without a feature_name", i);
		if (name && json_object_object_get_ex(seen, json_object_get_string(name), NULL) &&
		    !f->why[0])
			snprintf(f->why, sizeof(f->why), "its featurelist names the input feature "
				 "'%.200s' twice", json_object_get_string(name));
		if (name)
			json_object_object_add(seen, json_object_get_string(name), NULL);
		json_object_array_add(f->names, json_object_get(name));
		json_object_array_add(f->types, json_object_get(string_member(item, "type")));
		f->n++;
	}
	json_object_put(seen);
	if (!f->why[0] && !f->n)
		snprintf(f->why, sizeof(f->why), "its featurelist has no input features (entries of "
			 "kind 0)");
	f->named = !f->why[0];
}

void mlc_features_release(struct mlc_features *f)
{
	json_object_put(f->names);
	json_object_put(f->types);
	f->names = f->types = NULL;
	f->n = 0;
}

json_object *mlc_features_json(const struct mlc_features *f)
{
	json_object *o = json_object_new_object(), *inputs = json_object_new_array();
	size_t j;

	for (j = 0; j < f->n; j++) {
		json_object *in = json_object_new_object();

		json_object_object_add(in, "name", json_object_get(json_object_array_get_idx(f->names, j)));
		json_object_object_add(in, "type", json_object_get(json_object_array_get_idx(f->types, j)));
		json_object_array_add(inputs, in);
	}
	json_object_object_add(o, "inputs", inputs);
	json_object_object_add(o, "named", json_object_new_boolean(f->named));
	json_object_object_add(o, "why", f->named ? NULL : json_object_new_string(f->why));
	return o;
}
