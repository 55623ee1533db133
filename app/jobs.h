/*
 * jobs.h - what a job for mlc-spooler is made from: a model, the latest
 * version of each of its artifacts, and the bundle that carries them.
 */
#ifndef MLC_JOBS_H
#define MLC_JOBS_H

#include <limits.h>
#include <json-c/json.h>

#include "db.h"
#include "mlc.h"

enum { MLC_ART_MODEL, MLC_ART_DATA, MLC_ART_CODE, MLC_ART_ENV, MLC_ART_KINDS };
#define MLC_ART_BIT(k) (1u << (k))

struct mlc_job_src {
	int found;			/* the model exists */
	char modelkind[65];
	json_object *featurelist;	/* stored JSON (mlc_json_raw), or NULL */
	json_object *features;		/* its input features (mlc_features_json) */
	struct {
		char path[PATH_MAX];	/* absolute, inside the artifact store */
		char sha256[65];
		long long version;	/* 0 when the model has no such artifact */
		long long size;
	} file[MLC_ART_KINDS];
};

/* Load the model and its latest artifacts; s->found says whether it
 * exists.  Release with mlc_job_src_release. */
int mlc_job_src_load(struct mlc_db *db, const char *modelid, struct mlc_job_src *s,
		     struct mlc_err *err);
void mlc_job_src_release(struct mlc_job_src *s);

/*
 * Write the bundle spool/tmp/<name>: job.json (manifest plus "modelkind",
 * "featurelist", "features" (the featurelist's input features as
 * featurelist.h computes them), "files" and "created_at") and the artifacts
 * of the kinds
 * in mask that the model has, as model.pkl, data.csv, code.py and
 * requirements.txt.  Publish it with mlc_spool_publish.
 */
int mlc_job_bundle(const char *name, json_object *manifest, const struct mlc_job_src *s,
		   unsigned mask, const char *now, struct mlc_err *err);

#endif
