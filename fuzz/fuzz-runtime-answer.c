/*
 * fuzz-runtime-answer.c - libFuzzer target for the check of a model
 * runtime's /predict answers (mlc_runtime_answer, mlc_runtime_detail).
 *
 * Byte 0 says what was asked: bits 0-2 the number of rows sent, bit 3
 * explain, bit 4 a data link.  The rest is the answer.  Beyond "does not
 * crash or leak", it checks that a refusal says why in UTF-8; that an
 * accepted answer is an object holding one prediction per row, which
 * takes the gateway's operationid and survives printing and a second
 * check unchanged; and that an error answer's detail is UTF-8 text.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlc.h"
#include "runtime_answer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void utf8_text(const char *s, const char *what)
{
	if (mlc_utf8_check(s, strlen(s)) != strlen(s)) {
		fprintf(stderr, "%s is not UTF-8: %s\n", what, s);
		abort();
	}
}

/* What the checker promises about an answer it accepted. */
static void check_accepted(json_object *a, const struct mlc_rt_call *call)
{
	json_object *pred, *rows, *again;
	size_t want = call->rows;
	const char *text;
	char msg[512];

	if (!json_object_is_type(a, json_type_object) ||
	    !json_object_object_get_ex(a, "prediction", &pred) ||
	    !json_object_is_type(pred, json_type_array))
		abort();
	if (call->data_link) {
		if (!json_object_object_get_ex(a, "data", &rows) ||
		    !json_object_is_type(rows, json_type_array))
			abort();
		want = json_object_array_length(rows);
	}
	if (json_object_array_length(pred) != want)
		abort();
	text = json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN);
	again = mlc_runtime_answer(text, strlen(text), call, msg, sizeof(msg));
	if (!again || !json_object_equal(a, again)) {
		fprintf(stderr, "the printed answer is %s: %s\n%s\n",
			again ? "another value" : "refused", again ? "" : msg, text);
		abort();
	}
	json_object_put(again);
	/* What route-predict.c does with it. */
	json_object_object_del(a, "data");
	json_object_object_add(a, "operationid", json_object_new_string("op"));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mlc_rt_call call;
	const char *buf = (const char *)data + 1;
	json_object *a;
	char msg[512], detail[1024];

	if (size < 1)
		return 0;
	call.rows = data[0] & 7;
	call.explain = (data[0] >> 3) & 1;
	call.data_link = (data[0] >> 4) & 1;
	msg[0] = '\0';
	a = mlc_runtime_answer(buf, size - 1, &call, msg, sizeof(msg));
	if (a) {
		check_accepted(a, &call);
		json_object_put(a);
	} else {
		if (!msg[0])
			abort();
		utf8_text(msg, "a refusal");
	}
	mlc_runtime_detail(buf, size - 1, detail, sizeof(detail));
	utf8_text(detail, "a detail");
	return 0;
}
