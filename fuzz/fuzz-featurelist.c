/*
 * fuzz-featurelist.c - libFuzzer target for the input-feature rule
 * (mlc_features_of, mlc_features_json in app/featurelist.c) on any JSON
 * value a featurelist could hold.  Beyond "does not crash or leak", it
 * checks the rule's promises: one name and one type per input, names that
 * are null or non-empty strings, types null or strings; named exactly when
 * every input has a name and none repeats, with a reason when not; and a
 * JSON record that reads back with the same inputs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "featurelist.h"
#include "jsonutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
	fprintf(stderr, "%s\n", what);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_object *fl = NULL, *rec, *seen;
	struct mlc_features f;
	char msg[256];
	size_t j;
	int all_named = 1, unique = 1;

	if (mlc_json_parse((const char *)data, size, &fl, msg, sizeof(msg)) < 0)
		return 0;
	mlc_features_of(fl, &f);
	if (json_object_array_length(f.names) != f.n || json_object_array_length(f.types) != f.n)
		fail("one name and one type per input");
	if (f.n > MLC_FEATURES_MAX)
		fail("at most MLC_FEATURES_MAX inputs");
	seen = json_object_new_object();
	for (j = 0; j < f.n; j++) {
		json_object *name = json_object_array_get_idx(f.names, j);
		json_object *type = json_object_array_get_idx(f.types, j);

		if (type && !json_object_is_type(type, json_type_string))
			fail("a type is null or a string");
		if (!name) {
			all_named = 0;
			continue;
		}
		if (!json_object_is_type(name, json_type_string) || !json_object_get_string_len(name))
			fail("a name is null or a non-empty string");
		if (json_object_object_get_ex(seen, json_object_get_string(name), NULL))
			unique = 0;
		json_object_object_add(seen, json_object_get_string(name), NULL);
	}
	json_object_put(seen);
	if (f.named != (f.n > 0 && all_named && unique))
		fail("named exactly when every input has a name and none repeats");
	if (!f.named && !f.why[0])
		fail("a reason when the names cannot key rows");
	if (f.named && f.why[0])
		fail("no reason when they can");
	rec = mlc_features_json(&f);
	if (json_object_array_length(json_object_object_get(rec, "inputs")) != f.n ||
	    json_object_get_boolean(json_object_object_get(rec, "named")) != f.named)
		fail("the record says what the struct says");
	(void)json_object_to_json_string(rec);
	json_object_put(rec);
	mlc_features_release(&f);
	json_object_put(fl);
	return 0;
}
