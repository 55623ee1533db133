/*
 * route-training.c - /mltraining routes: a retraining job is a 'waiting' row in
 * `trainings` plus a bundle (code, data and env artifacts) for
 * mlc-spooler, which runs the code in the sandbox and stores the model it
 * produces as the model's next version through POST /model/{id}/upload.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caps.h"
#include "jobs.h"
#include "jsonutil.h"
#include "log.h"
#include "routes.h"
#include "spool.h"
#include "stamp.h"
#include "validate.h"

static const struct mlc_field placement_fields[] = {
	{ .name = "clusterID", .type = MLC_V_STR, .flags = MLC_F_NULLABLE, .max_len = 255 },
	{ .name = "node", .type = MLC_V_STR, .flags = MLC_F_NULLABLE, .max_len = 255 },
	{ .name = "continuum", .type = MLC_V_STR_OR_BOOL, .flags = MLC_F_NULLABLE, .max_len = 255 },
	{ .name = NULL }
};

static const struct mlc_field training_schema[] = {
	{ .name = "modelid", .type = MLC_V_STR, .flags = MLC_F_REQUIRED, .max_len = 64 },
	{ .name = "placement", .type = MLC_V_OBJ, .flags = MLC_F_NULLABLE, .fields = placement_fields },
	{ .name = "redeploy", .type = MLC_V_BOOL, .flags = MLC_F_NULLABLE },
	/* Not in the published API: the owner the training counts against
	 * (MLC_MAX_TRAININGS_PER_OWNER); none given is the owner ''. */
	{ .name = "ownerid", .type = MLC_V_STR, .flags = MLC_F_NULLABLE, .max_len = 255 },
	{ .name = NULL }
};

#define TRAINING_COLS "training_id, modelid, placement, redeploy, status, reason, code_version, " \
	"data_version, produced_version, created_at, started_at, finished_at, updated_at"

static json_object *int_or_null(const char *s)
{
	return s ? json_object_new_int64(atoll(s)) : NULL;
}

static json_object *training_from_row(char **c)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "training_id", json_object_new_string(c[0]));
	/* The Python service named the job's id deployment_id; keep it. */
	json_object_object_add(o, "deployment_id", json_object_new_string(c[0]));
	json_object_object_add(o, "modelid", json_object_new_string(c[1]));
	json_object_object_add(o, "placement", mlc_json_raw(c[2]));
	json_object_object_add(o, "redeploy", json_object_new_boolean(c[3] && atoi(c[3])));
	json_object_object_add(o, "status", json_object_new_string(c[4]));
	json_object_object_add(o, "reason", c[5] ? json_object_new_string(c[5]) : NULL);
	json_object_object_add(o, "code_version", int_or_null(c[6]));
	json_object_object_add(o, "data_version", int_or_null(c[7]));
	json_object_object_add(o, "produced_version", int_or_null(c[8]));
	json_object_object_add(o, "created_at", mlc_iso_time(c[9]));
	json_object_object_add(o, "started_at", mlc_iso_time(c[10]));
	json_object_object_add(o, "finished_at", mlc_iso_time(c[11]));
	json_object_object_add(o, "updated_at", mlc_iso_time(c[12]));
	return o;
}

/* A training is its owner's: another owner's id is a 404. */
static void reply_training_or_404(struct mlc_req *r, int status, const char *id)
{
	mlc_reply_owned_row_or_404(r, status, "SELECT " TRAINING_COLS " FROM trainings WHERE "
				   "training_id = ? AND " MLC_OWNER_COND, id, training_from_row,
				   "training");
}

static int first_id(void *ctx, char **c, const unsigned long *l, unsigned n)
{
	snprintf((char *)ctx, 65, "%s", c[0]);
	return 1;
}

static int write_bundle(struct mlc_req *r, json_object *m, const char *id,
			const struct mlc_job_src *s, const char *now, const char *bundle,
			struct mlc_err *err)
{
	json_object *j = json_object_new_object();
	int rc;

	json_object_object_add(j, "type", json_object_new_string("train"));
	json_object_object_add(j, "training_id", json_object_new_string(id));
	json_object_object_add(j, "modelid", json_object_get(json_object_object_get(m, "modelid")));
	json_object_object_add(j, "placement", json_object_get(json_object_object_get(m, "placement")));
	json_object_object_add(j, "redeploy",
			       json_object_new_boolean(json_object_get_boolean(json_object_object_get(m, "redeploy"))));
	/* The spooler names the request in its log lines about the job. */
	if (r->request_id)
		json_object_object_add(j, "request_id", json_object_new_string(r->request_id));
	rc = mlc_job_bundle(bundle, j, s, MLC_ART_BIT(MLC_ART_CODE) | MLC_ART_BIT(MLC_ART_DATA) |
			    MLC_ART_BIT(MLC_ART_ENV), now, err);
	json_object_put(j);
	return rc;
}

static const char *training_owner(json_object *m)
{
	const char *owner = json_object_get_string(json_object_object_get(m, "ownerid"));

	return owner ? owner : "";
}

/* After a lost COMMIT: whether the training row landed. */
static int training_landed(struct mlc_req *r, const char *modelid, const char *id)
{
	struct mlc_param p[] = { MLC_PSTR(id) };

	return mlc_model_row_landed(r, modelid, "SELECT 1 FROM trainings WHERE training_id = ?",
				    p, 1);
}

/*
 * Insert the 'waiting' row unless a training of the model is waiting or
 * running (the model row is locked so that two requests cannot both pass
 * that check) or a cap on trainings is reached (err 409).  *busy receives
 * the id of the one in the way.  Returns 0, -1 with err, or -2 with err
 * when the COMMIT's outcome is unknown (the row may be there: the bundle
 * must be published all the same).
 */
static int insert_training(struct mlc_req *r, json_object *m, const char *id,
			   const struct mlc_job_src *s, const char *now, char busy[65],
			   struct mlc_err *err)
{
	const char *modelid = json_object_get_string(json_object_object_get(m, "modelid"));
	json_object *pl = json_object_object_get(m, "placement");
	struct mlc_param key[] = { MLC_PSTR(modelid) }, busy_key[3];
	struct mlc_param p[] = {
		MLC_PSTR(id), MLC_PSTR(modelid), MLC_PSTR(training_owner(m)),
		pl ? MLC_PSTR(json_object_to_json_string_ext(pl, JSON_C_TO_STRING_PLAIN)) : MLC_PNULL,
		MLC_PLONG(json_object_get_boolean(json_object_object_get(m, "redeploy"))),
		/* Whose deployments a redeploy moves: the caller's, or every
		 * one for an admin (and with auth off). */
		mlc_is_admin(r) ? MLC_PNULL : MLC_PSTR(r->who.owner),
		MLC_PLONG(s->file[MLC_ART_CODE].version), MLC_PLONG(s->file[MLC_ART_DATA].version),
		MLC_PSTR(now), MLC_PSTR(now),
	};

	busy[0] = '\0';
	mlc_owner_params(r, busy_key);
	busy_key[2] = key[0];
	/* Another owner's training in the way is named "-", not by its id. */
	if (mlc_db_begin(r->db, err) < 0 ||
	    mlc_db_exec(r->db, "SELECT 1 FROM models WHERE modelid = ? FOR UPDATE", key, 1,
			NULL, NULL, err) < 0 ||
	    mlc_cap_check(r->db, MLC_CAP_TRAININGS, training_owner(m), 1, err) < 0 ||
	    mlc_db_exec(r->db, "SELECT IF(" MLC_OWNER_COND ", training_id, '-') FROM trainings "
			"WHERE modelid = ? AND status IN ('waiting', 'running') LIMIT 1",
			busy_key, 3, first_id, busy, err) < 0)
		goto fail;
	if (busy[0]) {
		mlc_db_rollback(r->db);
		return 0;
	}
	if (mlc_db_exec(r->db, "INSERT INTO trainings (training_id, modelid, ownerid, placement, "
			"redeploy, redeploy_owner, status, code_version, data_version, created_at, "
			"updated_at) VALUES (?, ?, ?, ?, ?, ?, 'waiting', ?, ?, ?, ?)", p, 10, NULL, NULL,
			err) < 0)
		goto fail;
	if (mlc_db_commit(r->db, err) < 0) {
		/* Lost with its answer, the commit may have landed all the same. */
		switch (training_landed(r, modelid, id)) {
		case 1:
			return 0;
		case 0:
			return -1;
		default:
			return -2;
		}
	}
	return 0;
fail:
	mlc_db_rollback(r->db);
	return -1;
}

void mlc_h_training_add(struct mlc_req *r)
{
	struct mlc_err err = { 0, "" };
	struct mlc_job_src src;
	char id[37], now[32], bundle[96], busy[65];
	struct mlc_err ignored;
	const char *modelid, *owner;
	int rc = 0;
	json_object *m = mlc_body_or_422(r, training_schema, 0);

	if (!m)
		return;
	memset(&src, 0, sizeof(src));
	modelid = json_object_get_string(json_object_object_get(m, "modelid"));
	if (mlc_model_owned_or_reply(r, modelid, "retrain") < 0 ||
	    mlc_body_owner(r, json_object_object_get(m, "ownerid") ?
			   json_object_get_string(json_object_object_get(m, "ownerid")) : NULL,
			   &owner) < 0) {
		json_object_put(m);
		return;
	}
	/* The training is the caller's (with auth off: the body's ownerid, or
	 * none); it counts against that owner's cap. */
	if (owner)
		json_object_object_add(m, "ownerid", json_object_new_string(owner));
	mlc_uuid4(id);
	snprintf(bundle, sizeof(bundle), "train-%s.tar.gz", id);
	if (mlc_cap_check(r->db, MLC_CAP_TRAININGS, training_owner(m), 0, &err) < 0 ||
	    mlc_job_src_load(r->db, modelid, &src, &err) < 0 ||
	    /* the bundle's time and the row's: one reading of the database's clock */
	    mlc_db_now(r->db, now, &err) < 0)
		mlc_reply_err(r, &err);
	else if (!src.found)
		mlc_error(r, 404, "model '%s' not found", modelid);
	else if (!src.file[MLC_ART_CODE].version || !src.file[MLC_ART_DATA].version)
		mlc_error(r, 409, "model '%s' has no %s file; upload one with POST "
				 "/model/%s/upload (file_kind=%s) first", modelid,
				 src.file[MLC_ART_CODE].version ? "data" : "code", modelid,
				 src.file[MLC_ART_CODE].version ? "data" : "code");
	else if (write_bundle(r, m, id, &src, now, bundle, &err) < 0 ||
		 (rc = insert_training(r, m, id, &src, now, busy, &err)) < 0) {
		/* Unknown outcome: the spooler sets aside a bundle without a row
		 * and fails a row without a bundle, so publishing is safe. */
		if (rc == -2 && mlc_spool_publish(bundle, &ignored) == 0)
			mlc_log("warn", NULL, "training %s: the commit's outcome is unknown; its bundle "
				"is published all the same", id);
		else
			mlc_spool_discard(bundle);
		mlc_reply_err(r, &err);
	} else if (busy[0]) {
		mlc_spool_discard(bundle);
		mlc_error(r, 400, "model '%s' is already being trained by %s%s%s", modelid,
				 strcmp(busy, "-") ? "training '" : "another owner's training",
				 strcmp(busy, "-") ? busy : "", strcmp(busy, "-") ? "'" : "");
	} else if (mlc_spool_publish(bundle, &err) < 0) {
		struct mlc_param p[] = { MLC_PSTR(id) };

		mlc_db_exec(r->db, "DELETE FROM trainings WHERE training_id = ?", p, 1, NULL, NULL,
			    &ignored);
		mlc_spool_discard(bundle);
		mlc_reply_err(r, &err);
	} else {
		reply_training_or_404(r, 201, id);
	}
	mlc_job_src_release(&src);
	json_object_put(m);
}

void mlc_h_training_status(struct mlc_req *r)
{
	reply_training_or_404(r, 200, mlc_param(r, "training_id"));
}

/* Every training of the caller's (an admin's: every one) unless asked for
 * less (the published API has no such route, so no documented page size
 * to keep). */
void mlc_h_training_all(struct mlc_req *r)
{
	long skip, limit;

	if (mlc_paging_or_422(r, MLC_NO_LIMIT, &skip, &limit) < 0)
		return;
	struct mlc_param p[2];

	mlc_owner_params(r, p);
	mlc_reply_page(r, "SELECT " TRAINING_COLS " FROM trainings WHERE " MLC_OWNER_COND
		       " ORDER BY created_at, training_id LIMIT ? OFFSET ?", p, 2, skip, limit,
		       training_from_row);
}

static json_object *log_from_row(char **c)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "training_id", json_object_new_string(c[0]));
	json_object_object_add(o, "status", json_object_new_string(c[1]));
	json_object_object_add(o, "log", json_object_new_string(c[2] ? c[2] : ""));
	return o;
}

/* GET /mltraining/{id}/log: the job's output (stdout and stderr, the
 * spooler keeps the last MLC_TRAIN_LOG_MAX bytes). */
void mlc_h_training_log(struct mlc_req *r)
{
	mlc_reply_owned_row_or_404(r, 200, "SELECT training_id, status, log FROM trainings "
				   "WHERE training_id = ? AND " MLC_OWNER_COND,
				   mlc_param(r, "training_id"), log_from_row, "training");
}
