/*
 * jsonutil.h - parsing untrusted JSON request bodies with json-c.
 */
#ifndef MLC_JSONUTIL_H
#define MLC_JSONUTIL_H

#include <stddef.h>
#include <json-c/json.h>

/*
 * Parse exactly one JSON value from buf[0..len).  On success returns 0 and
 * stores a new reference in *out.  On failure returns -1 and writes a
 * sentence a person can act on into msg, naming the byte offset of the
 * problem, e.g. "invalid JSON at byte 17: unexpected character".
 * Trailing non-whitespace after the value, an empty body, NUL bytes and
 * nesting deeper than MLC_JSON_MAX_DEPTH are errors too.
 * Offsets count from 0; a body that stops mid-value gives "unexpected end
 * of input at byte N" (N = len), an empty one "request body is empty".
 * RFC 8259 is enforced where json-c is lenient (single quotes, NaN,
 * control characters in strings, invalid UTF-8), and numbers json-c
 * would alter (integers beyond int64/uint64, doubles overflowing to
 * infinity) are refused.  The literal null gives 0 with *out == NULL,
 * json-c's null; of duplicate keys the last wins.
 */
#define MLC_JSON_MAX_DEPTH 32
int mlc_json_parse(const char *buf, size_t len, json_object **out,
		   char *msg, size_t msglen);

/*
 * A json-c node that serialises as the given JSON text, unchanged.  For
 * JSON this service stored itself after validating it (the database keeps
 * it in JSON_VALID-checked columns): echoing it avoids parsing and
 * re-printing every stored document on every read.  NULL text gives NULL
 * (JSON null).  The node is only for output: its value reads as 0.
 */
json_object *mlc_json_raw(const char *text);

#endif
