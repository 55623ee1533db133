/*
 * featurelist.h - a model's input features: the one rule for which
 * featurelist entries are inputs and when their names can key rows.
 *
 * The inputs are the featurelist entries that are objects whose "kind"
 * is 0, null or absent, in list order; every such entry is an input,
 * whatever its name.  An input's name is its "feature_name" when that is
 * a non-empty string, else it has none.  The names can key rows (rows
 * given as objects, CSV columns, explanation labels) only when every input
 * has one and no name is given twice; otherwise the inputs keep their
 * count, order and types, and "why" says what keeps the names from use.
 *
 * route-predict.c checks rows with it; mlc_job_bundle writes its result into
 * every job bundle's job.json as "features" (mlc_features_json), which is
 * what the model runtime reads instead of computing its own.
 */
#ifndef MLC_FEATURELIST_H
#define MLC_FEATURELIST_H

#include <stddef.h>
#include <json-c/json.h>

/* Inputs beyond this many are not told apart: the list counts as having
 * none (the API accepts featurelists of at most 1000 entries). */
#define MLC_FEATURES_MAX 4096

struct mlc_features {
	json_object *names;	/* array: per input its name (string) or null */
	json_object *types;	/* array: per input its "type" (string) or null */
	size_t n;		/* inputs */
	int named;		/* the names can key rows */
	char why[320];		/* when not named: why not (a clause) */
};

/* Fill f from a parsed featurelist (NULL: the model has none).  Release
 * with mlc_features_release. */
void mlc_features_of(json_object *featurelist, struct mlc_features *f);
void mlc_features_release(struct mlc_features *f);

/* f as the JSON job.json carries:
 * {"inputs": [{"name": "age"|null, "type": "cont"|null}, ...],
 *  "named": true|false, "why": null|"..."}.  A new reference. */
json_object *mlc_features_json(const struct mlc_features *f);

#endif
