/*
 * runtime_answer.h - checking what a model runtime answers to POST /predict.
 *
 * A runtime runs the uploaded model's code, so its answers are untrusted
 * input like any request: nothing in them is used before its shape is
 * known.  These functions are pure (no I/O, no configuration), for unit
 * tests and fuzzing.
 */
#ifndef MLC_RUNTIME_ANSWER_H
#define MLC_RUNTIME_ANSWER_H

#include <stddef.h>
#include <json-c/json.h>

/* What the gateway asked of the runtime. */
struct mlc_rt_call {
	size_t rows;		/* rows sent as "data" (not used for a data link) */
	int explain;		/* an explanation was asked for */
	int data_link;		/* the runtime read a CSV: it sends back the rows as "data" */
};

/*
 * Parse and check the 200 answer buf[0..len) of a /predict call.  It must be
 * strict JSON (UTF-8, no NaN, nesting at most MLC_JSON_MAX_DEPTH), an
 * object with "prediction": a list of one value per row, each a number, a
 * string, a boolean, null or a list of those.  For a data link, "data" must
 * be the list of rows read (each a list of numbers, strings, booleans or
 * nulls), and the rows counted are its rows.  An "explanation", required
 * when one was asked for, must be an object whose per-row entries
 * (feature_importance: lists of numbers; base_value, output_value,
 * error_bound: numbers; output: strings or numbers; null for any number)
 * have one item per row, and whose method, algorithm and feature_names
 * are strings, strings and a list of strings (or null).  Other keys pass
 * unchecked.
 *
 * Returns the answer (a new reference to an object), or NULL with msg
 * saying what is wrong in words that name the part, e.g. "the answer is
 * a list, not an object", "prediction has 2 values for 3 rows".
 */
json_object *mlc_runtime_answer(const char *buf, size_t len, const struct mlc_rt_call *call,
				char *msg, size_t msglen);

/*
 * The detail of an answer with another status: its "detail" when the
 * answer is a JSON object with one (a string as it is, anything else as
 * JSON text), else "no detail" or "the answer is not JSON".  Written to
 * out, cut at a character boundary when it does not fit.
 */
void mlc_runtime_detail(const char *buf, size_t len, char *out, size_t outlen);

#endif
