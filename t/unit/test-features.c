/*
 * test-featurelist.c - the input-feature rule (featurelist.h): which featurelist
 * entries are inputs, their names and types, and when the names can key
 * rows, against the cases of t/fixtures/input-features.json (the job
 * bundle's "features" is this function's output, read by the spooler's
 * tests too); and a featurelist with more inputs than are told apart.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "featurelist.h"
#include "tap.h"

#ifndef FIXTURE_DIR
#define FIXTURE_DIR "t/fixtures"
#endif

static const char *text(json_object *o)
{
	return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
}

int main(void)
{
	json_object *cases = json_object_from_file(FIXTURE_DIR "/input-features.json");
	struct mlc_features f;
	size_t i, n;

	ok(json_object_is_type(cases, json_type_array), "the fixture %s/input-features.json is a list",
	   FIXTURE_DIR);
	n = json_object_array_length(cases);
	ok(n >= 10, "it has %zu cases", n);
	for (i = 0; i < n; i++) {
		json_object *c = json_object_array_get_idx(cases, i), *fl = NULL, *want = NULL, *got;
		const char *what = json_object_get_string(json_object_object_get(c, "what"));

		json_object_object_get_ex(c, "featurelist", &fl);
		json_object_object_get_ex(c, "features", &want);
		mlc_features_of(fl, &f);
		got = mlc_features_json(&f);
		if (!ok(json_object_equal(got, want), "%s", what)) {
			diag("got  %s", text(got));
			diag("want %s", text(want));
		}
		is_int(f.n, json_object_array_length(json_object_object_get(want, "inputs")),
		       "%s: n counts the inputs", what);
		json_object_put(got);
		mlc_features_release(&f);
	}
	json_object_put(cases);

	/* More inputs than MLC_FEATURES_MAX: none are told apart. */
	{
		json_object *fl = json_object_new_array();
		char name[32];

		for (i = 0; i <= MLC_FEATURES_MAX; i++) {
			json_object *e = json_object_new_object();

			snprintf(name, sizeof(name), "f%zu", i);
			json_object_object_add(e, "feature_name", json_object_new_string(name));
			json_object_array_add(fl, e);
		}
		mlc_features_of(fl, &f);
		ok(f.n == 0 && !f.named && json_object_array_length(f.names) == 0,
		   "%d inputs: none told apart", MLC_FEATURES_MAX + 1);
		is_str(f.why, "its featurelist has more than 4096 input features", "and why");
		mlc_features_release(&f);
		json_object_array_del_idx(fl, 0, 1);
		mlc_features_of(fl, &f);
		ok(f.n == MLC_FEATURES_MAX && f.named, "%d inputs are all kept", MLC_FEATURES_MAX);
		mlc_features_release(&f);
		json_object_put(fl);
	}
	return done_testing();
}
