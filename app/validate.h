/*
 * validate.h - declarative validation of JSON bodies, accepting and
 * converting values as pydantic 2 (lax mode) did, producing errors in the
 * shape FastAPI (pydantic v1) clients already parse:
 *   {"loc": ["body", "hyperparameter", 0, "value"],
 *    "msg": "value is not a valid integer", "type": "type_error.integer"}
 * Every failing field is reported, not just the first.
 */
#ifndef MLC_VALIDATE_H
#define MLC_VALIDATE_H

#include <json-c/json.h>

enum mlc_vtype {
	/* Conversions follow pydantic 2's lax mode for JSON input. */
	MLC_V_STR,	/* a JSON string; numbers and booleans are refused */
	MLC_V_INT,	/* an integer: a JSON integer, an integral number (3.0), true / false,
			 * or a string holding an integer (" 1 ", "1.0", "1_000"); stored as int */
	MLC_V_NUM,	/* a JSON number, kept exactly as written (0.89 stays 0.89); a string
			 * holding a float or a boolean becomes that float ("0.89" -> 0.89,
			 * "16" -> 16.0, true -> 1.0); not finite ("inf") is refused */
	MLC_V_BOOL,	/* true / false, 0 / 1, "true" / "no" / "1" and the other words
			 * pydantic reads as booleans; stored as a JSON boolean */
	MLC_V_STR_OR_BOOL, /* a string kept as given (obeying the MLC_V_STR constraints), or a
			 * boolean; 0 / 1 become false / true */
	MLC_V_OBJ,	/* object validated with .fields (any object when .fields is NULL) */
	MLC_V_LIST,	/* array whose items have type .item (and .fields when .item is MLC_V_OBJ);
			 * items are never null and obey the field's min/max, choices and check */
	MLC_V_ANY	/* any JSON value, copied as is */
};

#define MLC_F_REQUIRED 0x1	/* absent -> "field required" (ignored when validating partially) */
#define MLC_F_NULLABLE 0x2	/* null accepted (and kept as null) */

struct mlc_field {
	const char *name;
	enum mlc_vtype type;
	unsigned flags;
	enum mlc_vtype item;		/* for MLC_V_LIST */
	const struct mlc_field *fields;	/* for MLC_V_OBJ, or list items of MLC_V_OBJ; ends with a {NULL} row */
	/* constraints, each ignored when zero / NULL */
	int has_min, has_max;
	long long min, max;		/* for MLC_V_INT values */
	size_t max_len;			/* for MLC_V_STR (characters), MLC_V_LIST (items) */
	const char *const *choices;	/* for MLC_V_STR: NULL-terminated permitted values */
	int (*check)(const char *s);	/* for MLC_V_STR: extra check, nonzero = ok */
	const char *check_msg;		/* message when check fails, type "value_error.str.regex" */
};

/*
 * Validate in (an object) against the NULL-terminated field array schema.
 * loc0 is the first element of every error's loc ("body" or "query").
 * Returns a new normalized object holding exactly the schema's fields
 * (absent optional fields as null unless partial; unknown keys dropped;
 * values converted as described above), or NULL after appending one detail
 * entry per failure to errors (a json array).  With partial nonzero,
 * required fields may be absent and absent fields are left out of the
 * result (for PATCH).  When in is not an object, a single error with
 * loc [loc0] and type "type_error.dict" is appended.
 */
json_object *mlc_validate(json_object *in, const struct mlc_field *schema,
			  const char *loc0, json_object *errors, int partial);

/* Append one detail entry {"loc": [...], "msg": msg, "type": type}; loc is
 * given as a NULL-terminated list of strings. */
void mlc_validate_error(json_object *errors, const char *msg, const char *type, ...)
	__attribute__((sentinel));

/*
 * The deployment-id rule, written once for the C side: 1 to 64 characters
 * of [A-Za-z0-9._-], the first a letter or a digit (so that no id is ".",
 * "..", a hidden file name or an option).  The router's deployment_id
 * path flag and the body schema of POST /deployment/add both use it;
 * t/fixtures/deployment-ids.txt holds the examples that the C and Python
 * tests check against it (the spooler names files and directories after
 * these ids).
 */
#define MLC_DEPLOYMENT_ID_MAX 64
#define MLC_DEPLOYMENT_ID_REGEX "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
int mlc_is_deployment_id(const char *s);

#endif
