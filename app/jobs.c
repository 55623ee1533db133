/*
 * jobs.c - job sources and bundles shared by deployments and training.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "featurelist.h"
#include "jobs.h"
#include "jsonutil.h"
#include "spool.h"
#include "stamp.h"
#include "store.h"

static const char *const kind_names[MLC_ART_KINDS] = { "model", "data", "code", "env" };
static const char *const member_names[MLC_ART_KINDS] = {
	"model.pkl", "data.csv", "code.py", "requirements.txt"
};

static int model_row(void *ctx, char **c, const unsigned long *l, unsigned n)
{
	struct mlc_job_src *s = ctx;
	struct mlc_features f;
	json_object *parsed = c[1] ? json_tokener_parse(c[1]) : NULL;

	s->found = 1;
	snprintf(s->modelkind, sizeof(s->modelkind), "%s", c[0]);
	s->featurelist = mlc_json_raw(c[1]);
	mlc_features_of(parsed, &f);
	s->features = mlc_features_json(&f);
	mlc_features_release(&f);
	json_object_put(parsed);
	return 1;
}

static int artifact_row(void *ctx, char **c, const unsigned long *l, unsigned n)
{
	struct mlc_job_src *s = ctx;
	unsigned i;

	for (i = 0; i < MLC_ART_KINDS; i++) {
		if (strcmp(c[0], kind_names[i]))
			continue;
		snprintf(s->file[i].path, sizeof(s->file[i].path), "%s/%s", mlc_store_root(), c[2]);
		snprintf(s->file[i].sha256, sizeof(s->file[i].sha256), "%s", c[3]);
		s->file[i].version = atoll(c[1]);
		s->file[i].size = atoll(c[4]);
	}
	return 0;
}

int mlc_job_src_load(struct mlc_db *db, const char *modelid, struct mlc_job_src *s,
		     struct mlc_err *err)
{
	struct mlc_param p[] = { MLC_PSTR(modelid), MLC_PSTR(modelid) };

	memset(s, 0, sizeof(*s));
	if (mlc_db_exec(db, "SELECT modelkind, featurelist FROM models WHERE modelid = ?",
			p, 1, model_row, s, err) < 0)
		return -1;
	if (!s->found)
		return 0;
	return mlc_db_exec(db, "SELECT filekind, version, path, sha256, size FROM artifacts "
			   "WHERE modelid = ? AND (filekind, version) IN (SELECT filekind, "
			   "MAX(version) FROM artifacts WHERE modelid = ? GROUP BY filekind)",
			   p, 2, artifact_row, s, err) < 0 ? -1 : 0;
}

void mlc_job_src_release(struct mlc_job_src *s)
{
	json_object_put(s->featurelist);
	json_object_put(s->features);
	s->featurelist = s->features = NULL;
}

int mlc_job_bundle(const char *name, json_object *manifest, const struct mlc_job_src *s,
		   unsigned mask, const char *now, struct mlc_err *err)
{
	struct mlc_bundle_file members[MLC_ART_KINDS];
	json_object *files = json_object_new_object();
	unsigned i, n = 0;

	for (i = 0; i < MLC_ART_KINDS; i++) {
		json_object *f;

		if (!(mask & MLC_ART_BIT(i)) || !s->file[i].version)
			continue;
		f = json_object_new_object();
		json_object_object_add(f, "name", json_object_new_string(member_names[i]));
		json_object_object_add(f, "sha256", json_object_new_string(s->file[i].sha256));
		json_object_object_add(f, "size", json_object_new_int64(s->file[i].size));
		json_object_object_add(f, "version", json_object_new_int64(s->file[i].version));
		json_object_object_add(files, kind_names[i], f);
		members[n++] = (struct mlc_bundle_file){ member_names[i], s->file[i].path };
	}
	json_object_object_add(manifest, "modelkind", json_object_new_string(s->modelkind));
	json_object_object_add(manifest, "featurelist", json_object_get(s->featurelist));
	json_object_object_add(manifest, "features", json_object_get(s->features));
	json_object_object_add(manifest, "files", files);
	json_object_object_add(manifest, "created_at", mlc_iso_time(now));
	return mlc_spool_write(name, manifest, members, n, err);
}
