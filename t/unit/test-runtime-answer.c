/*
 * test-runtime-answer.c - what a model runtime may answer to /predict.
 *
 * The runtime runs the uploaded model's code, so each answer here is one a
 * hostile or broken model can produce: none may crash the checker, each
 * refusal must say what was wrong, and an accepted answer must be an
 * object the gateway can add its operationid to.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlc.h"
#include "runtime_answer.h"
#include "tap.h"

/* A string literal that may hold NUL bytes, as pointer and length. */
#define BIN(lit) (lit), (sizeof(lit) - 1)

static const struct mlc_rt_call one = { 1, 0, 0 }, two = { 2, 0, 0 };
static const struct mlc_rt_call explain2 = { 2, 1, 0 }, link = { 0, 0, 1 };

/* The answer is accepted, and the gateway's additions work on it. */
static void accepts(const char *title, const char *buf, size_t len, const struct mlc_rt_call *c)
{
	char msg[512] = "";
	json_object *a = mlc_runtime_answer(buf, len, c, msg, sizeof(msg));

	ok(a && json_object_is_type(a, json_type_object), "accepted: %s", title);
	if (!a) {
		diag("refused with: %s", msg);
		return;
	}
	json_object_object_add(a, "operationid", json_object_new_string("x"));
	json_object_object_del(a, "data");
	json_object_put(a);
}

/* The answer is refused with exactly msg. */
static void refuses(const char *title, const char *buf, size_t len, const struct mlc_rt_call *c,
		    const char *want)
{
	char msg[512] = "";
	json_object *a = mlc_runtime_answer(buf, len, c, msg, sizeof(msg));

	ok(!a, "refused: %s", title);
	is_str(msg, want, "refused: %s: the message", title);
	json_object_put(a);
}

static char *repeat(const char *head, const char *unit, size_t n, const char *tail)
{
	size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail), i;
	char *s = malloc(hl + ul * n + tl + 1), *p = s;

	memcpy(p, head, hl);
	p += hl;
	for (i = 0; i < n; i++, p += ul)
		memcpy(p, unit, ul);
	memcpy(p, tail, tl + 1);
	return s;
}

static void test_good(void)
{
	accepts("one row", BIN("{\"prediction\":[0]}"), &one);
	accepts("whitespace around", BIN(" \n{\"prediction\": [1.5] }\r\n"), &one);
	accepts("two rows of strings", BIN("{\"prediction\":[\"setosa\",\"virginica\"]}"), &two);
	accepts("several outputs per row", BIN("{\"prediction\":[[1,2],[3,4.5]]}"), &two);
	accepts("null (NaN from the model) and booleans", BIN("{\"prediction\":[null,true]}"), &two);
	accepts("unknown keys pass", BIN("{\"prediction\":[1],\"model\":{\"x\":[[1]]}}"), &one);
	accepts("an explanation as the runtime makes it",
		BIN("{\"prediction\":[1,2],\"explanation\":{\"method\":\"shap\",\"algorithm\":\"exact\","
		    "\"feature_names\":[\"a\",\"b\"],\"feature_importance\":[[0.1,0.2],[0.3,null]],"
		    "\"base_value\":[1,1],\"output\":[\"predicted value\",\"predicted value\"],"
		    "\"output_value\":[1.3,2],\"error_bound\":[0.01,0.02]}}"), &explain2);
	accepts("an explanation that was not asked for is checked, and may be null",
		BIN("{\"prediction\":[1,2],\"explanation\":null}"), &two);
	accepts("a data link's rows", BIN("{\"prediction\":[1,2],\"data\":[[1,\"a\"],[2.5,null]]}"), &link);
	accepts("a data link with no rows and no predictions", BIN("{\"prediction\":[],\"data\":[]}"), &link);
	accepts("duplicate keys: the last wins", BIN("{\"prediction\":\"x\",\"prediction\":[1]}"), &one);
	accepts("a lone surrogate escape (becomes U+FFFD)", BIN("{\"prediction\":[\"\\ud800\"]}"), &one);
}

static void test_not_an_object(void)
{
	refuses("empty", BIN(""), &one, "the answer is empty");
	refuses("only whitespace", BIN(" \r\n\t"), &one, "the answer is empty");
	refuses("a list", BIN("[1]"), &one, "the answer is a list, not an object");
	refuses("a string", BIN("\"[1]\""), &one, "the answer is a string, not an object");
	refuses("a number", BIN("42"), &one, "the answer is a number, not an object");
	refuses("true", BIN("true"), &one, "the answer is a boolean, not an object");
	refuses("null", BIN("null"), &one, "the answer is null, not an object");
}

static void test_not_json(void)
{
	char *deep = repeat("{\"prediction\":", "[", 10000, "");
	char *open32 = repeat("{\"prediction\":[", "[", 30, "");
	char *deep_ok = repeat(open32, "]", 31, "}");

	refuses("HTML", BIN("<html>502</html>"), &one,
		"the answer is not valid JSON: at byte 0: unexpected character");
	refuses("NaN", BIN("{\"prediction\":[NaN]}"), &one,
		"the answer is not valid JSON: at byte 15: unexpected character");
	refuses("Infinity", BIN("{\"prediction\":[Infinity]}"), &one,
		"the answer is not valid JSON: at byte 15: unexpected character");
	refuses("-Infinity", BIN("{\"prediction\":[-Infinity]}"), &one,
		"the answer is not valid JSON: at byte 16: unexpected character");
	refuses("1e999", BIN("{\"prediction\":[1e999]}"), &one,
		"the answer is not valid JSON: at byte 15: number out of range");
	refuses("an integer beyond 64 bits", BIN("{\"prediction\":[99999999999999999999]}"), &one,
		"the answer is not valid JSON: at byte 15: number out of range");
	refuses("cut short", BIN("{\"prediction\":[1"), &one,
		"the answer is not valid JSON: unexpected end of input at byte 16");
	refuses("data after the object", BIN("{\"prediction\":[1]} {}"), &one,
		"the answer is not valid JSON: at byte 19: unexpected character");
	refuses("a NUL byte", BIN("{\"prediction\":[1]}\0"), &one,
		"the answer is not valid JSON: at byte 18: unexpected NUL byte");
	refuses("invalid UTF-8", BIN("{\"prediction\":[\"\xff\"]}"), &one,
		"the answer is not valid JSON: at byte 16: invalid utf-8 string");
	refuses("an overlong UTF-8 form", BIN("{\"prediction\":[\"\xc0\xaf\"]}"), &one,
		"the answer is not valid JSON: at byte 16: invalid utf-8 string");
	refuses("a UTF-8 encoded surrogate", BIN("{\"prediction\":[\"\xed\xa0\x80\"]}"), &one,
		"the answer is not valid JSON: at byte 17: invalid utf-8 string");
	refuses("single quotes", BIN("{'prediction':[1]}"), &one,
		"the answer is not valid JSON: at byte 1: unexpected character");
	refuses("nested 10,000 deep", deep, strlen(deep), &one,
		"the answer is not valid JSON: at byte 45: nesting too deep");
	refuses("nested 32 deep, inside the parser's limit: a list within a list",
		deep_ok, strlen(deep_ok), &one, "prediction 0 is a list whose item 0 is a list; a row's "
		"prediction is a number, a string, a boolean, null or a list of those");
	free(deep);
	free(open32);
	free(deep_ok);
}

static void test_prediction(void)
{
	refuses("no prediction", BIN("{}"), &one, "the answer has no prediction");
	refuses("prediction is a string", BIN("{\"prediction\":\"abc\"}"), &one,
		"prediction is a string, not a list");
	refuses("prediction is a dict", BIN("{\"prediction\":{\"a\":1}}"), &one,
		"prediction is an object, not a list");
	refuses("prediction is null", BIN("{\"prediction\":null}"), &one,
		"prediction is null, not a list");
	refuses("prediction is a number", BIN("{\"prediction\":1}"), &one,
		"prediction is a number, not a list");
	refuses("too many values", BIN("{\"prediction\":[1,2,3]}"), &one,
		"prediction has 3 values for 1 row");
	refuses("too few values", BIN("{\"prediction\":[1]}"), &two,
		"prediction has 1 value for 2 rows");
	refuses("no values", BIN("{\"prediction\":[]}"), &two, "prediction has 0 values for 2 rows");
	refuses("an object for a row", BIN("{\"prediction\":[1,{\"a\":1}]}"), &two,
		"prediction 1 is an object; a row's prediction is a number, a string, a boolean, "
		"null or a list of those");
	refuses("a list within a row's list", BIN("{\"prediction\":[[1,[2]],[3]]}"), &two,
		"prediction 0 is a list whose item 1 is a list; a row's prediction is a number, "
		"a string, a boolean, null or a list of those");
}

static void test_explanation(void)
{
	refuses("missing when asked", BIN("{\"prediction\":[1,2]}"), &explain2,
		"the answer has no explanation");
	refuses("null when asked", BIN("{\"prediction\":[1,2],\"explanation\":null}"), &explain2,
		"explanation is null, not an object");
	refuses("a list", BIN("{\"prediction\":[1,2],\"explanation\":[]}"), &explain2,
		"explanation is a list, not an object");
	refuses("a list even when not asked", BIN("{\"prediction\":[1,2],\"explanation\":[]}"), &two,
		"explanation is a list, not an object");
	refuses("method not a string", BIN("{\"prediction\":[1,2],\"explanation\":{\"method\":5}}"),
		&explain2, "explanation.method is a number, not a string");
	refuses("feature_names not a list of strings",
		BIN("{\"prediction\":[1,2],\"explanation\":{\"feature_names\":[\"a\",1]}}"), &explain2,
		"explanation.feature_names is not a list of strings");
	refuses("base_value of the wrong length",
		BIN("{\"prediction\":[1,2],\"explanation\":{\"base_value\":[1]}}"), &explain2,
		"explanation.base_value has 1 item for 2 rows");
	refuses("base_value not a list",
		BIN("{\"prediction\":[1,2],\"explanation\":{\"base_value\":{}}}"), &explain2,
		"explanation.base_value is an object, not a list with one item per row");
	refuses("feature_importance rows that are numbers",
		BIN("{\"prediction\":[1,2],\"explanation\":{\"feature_importance\":[1,2]}}"), &explain2,
		"explanation.feature_importance item 0 is a number, not a list of numbers");
	refuses("feature_importance with a string",
		BIN("{\"prediction\":[1,2],\"explanation\":{\"feature_importance\":[[1],[\"x\"]]}}"),
		&explain2, "explanation.feature_importance item 1 is a list, not a list of numbers");
	refuses("output an object",
		BIN("{\"prediction\":[1,2],\"explanation\":{\"output\":[\"a\",{}]}}"), &explain2,
		"explanation.output item 1 is an object, not a string or a number");
}

static void test_data_link(void)
{
	refuses("no data", BIN("{\"prediction\":[1]}"), &link,
		"the answer has no data (the rows read from the CSV)");
	refuses("data a string", BIN("{\"prediction\":[1],\"data\":\"1,2\"}"), &link,
		"data is a string, not a list of rows");
	refuses("data null", BIN("{\"prediction\":[1],\"data\":null}"), &link,
		"data is null, not a list of rows");
	refuses("a row that is a number", BIN("{\"prediction\":[1],\"data\":[1]}"), &link,
		"data row 0 is a number, not a list");
	refuses("a value that is an object", BIN("{\"prediction\":[1],\"data\":[[1,{}]]}"), &link,
		"data row 0: item 1 is an object, not a number, a string, a boolean or null");
	refuses("predictions for fewer rows than read", BIN("{\"prediction\":[1],\"data\":[[1],[2]]}"),
		&link, "prediction has 1 value for 2 rows");
	refuses("the rows sent do not count for a data link", BIN("{\"prediction\":[1,2],\"data\":[[1]]}"),
		&link, "prediction has 2 values for 1 row");
}

/* A big but well-formed answer is checked in one pass. */
static void test_big(void)
{
	struct mlc_rt_call c = { 100000, 0, 0 };
	char *big = repeat("{\"prediction\":[0", ",1.25", 99999, "]}");

	accepts("100,000 rows", big, strlen(big), &c);
	c.rows = 99999;
	refuses("100,000 values for 99,999 rows", big, strlen(big), &c,
		"prediction has 100000 values for 99999 rows");
	free(big);
}

static void detail_is(const char *title, const char *buf, size_t len, const char *want)
{
	char out[64];

	mlc_runtime_detail(buf, len, out, sizeof(out));
	is_str(out, want, "detail: %s", title);
}

static void test_detail(void)
{
	char out[16];

	detail_is("a detail string", BIN("{\"detail\":\"model prediction failed: E\"}"),
		  "model prediction failed: E");
	detail_is("no body", NULL, 0, "no detail");
	detail_is("an empty body", BIN(""), "no detail");
	detail_is("an object without detail", BIN("{\"x\":1}"), "no detail");
	detail_is("detail null", BIN("{\"detail\":null}"), "no detail");
	detail_is("a list", BIN("[\"detail\"]"), "no detail");
	detail_is("a string", BIN("\"detail\""), "no detail");
	detail_is("not JSON", BIN("Internal Server Error"), "the answer is not JSON");
	detail_is("NaN", BIN("{\"detail\":NaN}"), "the answer is not JSON");
	detail_is("invalid UTF-8", BIN("{\"detail\":\"\xff\"}"), "the answer is not JSON");
	detail_is("a detail that is a list", BIN("{\"detail\":[{\"msg\":\"x\"}]}"), "[{\"msg\":\"x\"}]");
	/* 13 ASCII bytes, then a 3-byte character that does not fit in 16. */
	mlc_runtime_detail(BIN("{\"detail\":\"0123456789abc\xe2\x82\xac\"}"), out, sizeof(out));
	is_str(out, "0123456789abc", "a long detail is cut before a character, not inside it");
	mlc_runtime_detail(BIN("{\"detail\":\"0123456789ab\xe2\x82\xac\"}"), out, sizeof(out));
	is_str(out, "0123456789ab\xe2\x82\xac", "a character that just fits is kept");
}

static void test_utf8(void)
{
	char s[16];

	is_int(mlc_utf8_check(BIN("a\xc3\xa9\xf0\x9f\x98\x80")), 7, "valid UTF-8 is valid to its end");
	is_int(mlc_utf8_check(BIN("ab\xc3")), 2, "a sequence cut by the end: its first byte");
	is_int(mlc_utf8_check(BIN("ab\xf0\x9f\x98")), 2, "a 4-byte sequence cut by the end: its first byte");
	is_int(mlc_utf8_check(BIN("ab\xe0\x9f\x80")), 3, "an overlong 3-byte form: its second byte");
	is_int(mlc_utf8_check(BIN("\x80")), 0, "a continuation byte alone: itself");
	strcpy(s, "ab\xe2\x82");
	mlc_utf8_trim(s);
	is_str(s, "ab", "trim drops a cut sequence");
	strcpy(s, "ab\xe2\x82\xac");
	mlc_utf8_trim(s);
	is_str(s, "ab\xe2\x82\xac", "trim keeps a whole one");
	strcpy(s, "ab\x80");
	mlc_utf8_trim(s);
	is_str(s, "ab\x80", "trim leaves what truncation cannot have made");
	strcpy(s, "");
	mlc_utf8_trim(s);
	is_str(s, "", "trim of the empty string");
}

int main(void)
{
	test_good();
	test_not_an_object();
	test_not_json();
	test_prediction();
	test_explanation();
	test_data_link();
	test_big();
	test_detail();
	test_utf8();
	return done_testing();
}
