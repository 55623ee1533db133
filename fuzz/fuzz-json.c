/*
 * fuzz-json.c - libFuzzer target for mlc_json_parse.
 *
 * Beyond "does not crash or leak", it checks two properties: a refusal
 * always names a byte offset inside the body (or says the body is empty),
 * and whatever is accepted prints back to JSON that parses again to an
 * equal value.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A refusal message must be one of the documented forms, with an offset
 * no further than the end of the body. */
static void check_message(const char *msg, size_t size)
{
	size_t at;
	char why[64];

	if (!strcmp(msg, "request body is empty") ||
	    !strcmp(msg, "request body is too large to parse"))
		return;
	if (sscanf(msg, "invalid JSON at byte %zu: %63[^\n]", &at, why) == 2) {
		if (at >= size)
			abort();
		return;
	}
	if (sscanf(msg, "unexpected end of input at byte %zu", &at) == 1 && at == size)
		return;
	fprintf(stderr, "unexpected message: %s\n", msg);
	abort();
}

/* What was accepted must survive a print and a second parse unchanged. */
static void check_round_trip(json_object *o)
{
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	json_object *again = NULL;
	char msg[256];

	if (mlc_json_parse(text, strlen(text), &again, msg, sizeof(msg)) < 0) {
		fprintf(stderr, "printed JSON does not parse: %s\n%s\n", msg, text);
		abort();
	}
	if (!json_object_equal(o, again)) {
		fprintf(stderr, "round trip changed the value: %s\n", text);
		abort();
	}
	json_object_put(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_object *o = NULL;
	char msg[256];

	if (mlc_json_parse((const char *)data, size, &o, msg, sizeof(msg)) < 0) {
		if (o)
			abort();
		check_message(msg, size);
		return 0;
	}
	check_round_trip(o);
	json_object_put(o);
	return 0;
}
