/*
 * route-deployments.c - the /deployment routes: creating deployments (a job bundle for
 * mlc-spooler plus a 'waiting' row), reading their state, stopping them,
 * and the inference operations recorded against them.
 *
 * The C side only records intent: the row's `desired` column and the
 * bundle.  mlc-spooler starts and stops runtimes and writes `status`.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "jobs.h"
#include "jsonbuf.h"
#include "jsonutil.h"
#include "rowcache.h"
#include "caps.h"
#include "routes.h"
#include "spool.h"
#include "stamp.h"
#include "store.h"
#include "validate.h"

/* ---- schemas ---- */

/* Empty means "generate one"; anything else follows the one id rule. */
static int valid_given_id(const char *s)
{
	return !*s || mlc_is_deployment_id(s);
}

static const struct mlc_field placement_fields[] = {
	{ .name = "clusterID", .type = MLC_V_STR, .flags = MLC_F_NULLABLE, .max_len = 255 },
	{ .name = "node", .type = MLC_V_STR, .flags = MLC_F_NULLABLE, .max_len = 255 },
	{ .name = "continuum", .type = MLC_V_STR_OR_BOOL, .flags = MLC_F_NULLABLE, .max_len = 255 },
	{ .name = NULL }
};

/* The deployment backends (docs/SCALING.md). */
static int known_backend(const char *s)
{
	return !strcmp(s, "local") || !strcmp(s, "kubernetes") || !strcmp(s, "mlsysops");
}

/* With auth on, an ownerid (and an operation's modelid) may be left out:
 * the token and the deployment say what they are.  So each schema comes
 * twice, OWNED being the flags of those fields. */
#define DEPLOYMENT_FIELDS(OWNED) \
	{ .name = "modelid", .type = MLC_V_STR, .flags = MLC_F_REQUIRED, .max_len = 64 }, \
	{ .name = "ownerid", .type = MLC_V_STR, .flags = (OWNED), .max_len = 255 }, \
	{ .name = "placement", .type = MLC_V_OBJ, .flags = MLC_F_REQUIRED | MLC_F_NULLABLE, \
	  .fields = placement_fields }, \
	{ .name = "deployment_id", .type = MLC_V_STR, .flags = MLC_F_NULLABLE, \
	  .check = valid_given_id, \
	  .check_msg = "string does not match regex \"" MLC_DEPLOYMENT_ID_REGEX "\"" }, \
	{ .name = "inference_data", .type = MLC_V_INT, .flags = MLC_F_NULLABLE, \
	  .has_min = 1, .min = 0, .has_max = 1, .max = 1 }, \
	{ .name = "backend", .type = MLC_V_STR, .flags = MLC_F_NULLABLE, .max_len = 16, \
	  .check = known_backend, \
	  .check_msg = "backend must be one of: local, kubernetes, mlsysops" }, \
	{ .name = NULL }

static const struct mlc_field deployment_schema[] = { DEPLOYMENT_FIELDS(MLC_F_REQUIRED) };
static const struct mlc_field deployment_schema_auth[] = { DEPLOYMENT_FIELDS(MLC_F_NULLABLE) };

/*
 * The backend a deployment asks for (its "backend", else MLC_BACKEND), or
 * NULL after a 422 when this installation cannot use it: kubernetes needs
 * MLC_KUBECONFIG, mlsysops MLC_NORTHBOUND_URL (the spooler's rule, see
 * scripts/mlcpy/backend.py configured()).
 */
static const char *backend_or_422(struct mlc_req *r, json_object *m)
{
	json_object *b = json_object_object_get(m, "backend");
	const char *name = b ? json_object_get_string(b) : mlc_config_get("MLC_BACKEND", "local");
	const char *key = NULL;

	if (!name || !*name)
		name = "local";
	if (!strcmp(name, "kubernetes"))
		key = "MLC_KUBECONFIG";
	else if (!strcmp(name, "mlsysops"))
		key = "MLC_NORTHBOUND_URL";
	else if (strcmp(name, "local"))
		key = "MLC_BACKEND";	/* an installation default that names no backend */
	if (key && (!strcmp(key, "MLC_BACKEND") || !*mlc_config_get(key, ""))) {
		if (!strcmp(key, "MLC_BACKEND"))
			mlc_reply_422_at(r, "backend", "value_error.backend",
					 "this installation's MLC_BACKEND '%s' is not a backend; "
					 "use local, kubernetes or mlsysops", name);
		else
			mlc_reply_422_at(r, "backend", "value_error.backend",
					 "backend '%s' is not configured on this installation "
					 "(%s is not set)", name, key);
		return NULL;
	}
	return name;
}

static int valid_timestamp(const char *s)
{
	char buf[32];

	return mlc_parse_iso8601(s, buf) == 0;
}

#define OPERATION_FIELDS(OWNED) \
	{ .name = "ownerid", .type = MLC_V_STR, .flags = (OWNED), .max_len = 255 }, \
	{ .name = "deploymentid", .type = MLC_V_STR, .flags = MLC_F_REQUIRED, .max_len = 64 }, \
	{ .name = "modelid", .type = MLC_V_STR, .flags = (OWNED), .max_len = 64 }, \
	{ .name = "data", .type = MLC_V_ANY, .flags = MLC_F_NULLABLE }, \
	{ .name = "result", .type = MLC_V_ANY, .flags = MLC_F_NULLABLE }, \
	{ .name = "timestamp", .type = MLC_V_STR, .flags = MLC_F_NULLABLE, .max_len = 64, \
	  .check = valid_timestamp, \
	  .check_msg = "invalid datetime format; use ISO 8601, e.g. 2026-11-27T05:32:26Z" }, \
	{ .name = NULL }

static const struct mlc_field operation_schema[] = { OPERATION_FIELDS(MLC_F_REQUIRED) };
static const struct mlc_field operation_schema_auth[] = { OPERATION_FIELDS(MLC_F_NULLABLE) };

/* A string member of a validated body, NULL when absent or null. */
static const char *body_str(json_object *m, const char *key)
{
	json_object *v = json_object_object_get(m, key);

	return v ? json_object_get_string(v) : NULL;
}

/* ---- rows ---- */

#define DEPLOYMENT_COLS "deployment_id, modelid, model_version, ownerid, placement, " \
	"inference_data, status, reason, warnings, endpoint, created_at, updated_at, backend"

static json_object *str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static json_object *deployment_from_row(char **c)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "deployment_id", json_object_new_string(c[0]));
	json_object_object_add(o, "modelid", json_object_new_string(c[1]));
	json_object_object_add(o, "model_version", json_object_new_int64(atoll(c[2])));
	json_object_object_add(o, "ownerid", json_object_new_string(c[3]));
	json_object_object_add(o, "placement", mlc_json_raw(c[4]));
	json_object_object_add(o, "inference_data", json_object_new_int(atoi(c[5])));
	json_object_object_add(o, "status", json_object_new_string(c[6]));
	json_object_object_add(o, "reason", str_or_null(c[7]));
	json_object_object_add(o, "warnings", str_or_null(c[8]));
	json_object_object_add(o, "endpoint", str_or_null(c[9]));
	json_object_object_add(o, "created_at", mlc_iso_time(c[10]));
	json_object_object_add(o, "updated_at", mlc_iso_time(c[11]));
	json_object_object_add(o, "backend", json_object_new_string(c[12]));
	return o;
}

/* A deployment is its owner's: another owner's id is a 404. */
static void reply_deployment_or_404(struct mlc_req *r, int status, const char *id)
{
	mlc_reply_owned_row_or_404(r, status, "SELECT " DEPLOYMENT_COLS " FROM deployments "
				   "WHERE deployment_id = ? AND " MLC_OWNER_COND, id,
				   deployment_from_row, "deployment");
}

/* ---- POST /deployment/add ---- */

/* The bundle for mlc-spooler: what to run and the model's model, data
 * and env artifacts. */
static int write_bundle(struct mlc_req *r, json_object *m, const char *id,
			const struct mlc_job_src *s, const char *now, const char *bundle,
			struct mlc_err *err)
{
	json_object *j = json_object_new_object();
	int rc;

	json_object_object_add(j, "type", json_object_new_string("deploy"));
	json_object_object_add(j, "deployment_id", json_object_new_string(id));
	json_object_object_add(j, "modelid", json_object_get(json_object_object_get(m, "modelid")));
	json_object_object_add(j, "model_version", json_object_new_int64(s->file[MLC_ART_MODEL].version));
	json_object_object_add(j, "ownerid", json_object_get(json_object_object_get(m, "ownerid")));
	json_object_object_add(j, "placement", json_object_get(json_object_object_get(m, "placement")));
	json_object_object_add(j, "inference_data",
			       json_object_new_int(json_object_get_int(json_object_object_get(m, "inference_data"))));
	/* The spooler names the request in its log lines about the job. */
	if (r->request_id)
		json_object_object_add(j, "request_id", json_object_new_string(r->request_id));
	rc = mlc_job_bundle(bundle, j, s, MLC_ART_BIT(MLC_ART_MODEL) | MLC_ART_BIT(MLC_ART_DATA) |
			    MLC_ART_BIT(MLC_ART_ENV), now, err);
	json_object_put(j);
	return rc;
}

/* Insert the 'waiting' row, replacing a stopped deployment of the same id
 * and owner (ids of stopped deployments may be reused by their owner), with
 * the model's featurelist as it is now: the deployment keeps it.  It is
 * the featurelist the bundle's "features" were computed from (s), not one
 * read again, so that the gateway and the runtime cannot disagree. */
static int insert_deployment(struct mlc_req *r, json_object *m, const char *id,
			     const char *backend, const struct mlc_job_src *s, const char *now,
			     struct mlc_err *err)
{
	json_object *pl = json_object_object_get(m, "placement");
	const char *pls = pl ? json_object_to_json_string_ext(pl, JSON_C_TO_STRING_PLAIN) : NULL;
	const char *owner = json_object_get_string(json_object_object_get(m, "ownerid"));
	struct mlc_param del[] = { MLC_PSTR(id), MLC_PSTR(owner) };
	struct mlc_param p[] = {
		MLC_PSTR(id),
		MLC_PSTR(json_object_get_string(json_object_object_get(m, "modelid"))),
		MLC_PLONG(s->file[MLC_ART_MODEL].version),
		MLC_PSTR(owner),
		pls ? MLC_PSTR(pls) : MLC_PNULL,
		MLC_PLONG(json_object_get_int(json_object_object_get(m, "inference_data"))),
		MLC_PSTR(backend),
		MLC_PSTR(now), MLC_PSTR(now),
		s->featurelist ? MLC_PSTR(json_object_to_json_string(s->featurelist)) : MLC_PNULL,
		MLC_PSTR(json_object_get_string(json_object_object_get(m, "modelid"))),
	};

	long long model_rows = 0;
	int over = 0;

	/* The caps are counted after the model row's lock and before any
	 * other read (see mlc_cap_check), in the transaction that inserts. */
	if (mlc_db_begin(r->db, err) < 0 ||
	    (model_rows = mlc_db_exec(r->db, "SELECT 1 FROM models WHERE modelid = ? "
				      "LOCK IN SHARE MODE", &p[1], 1, NULL, NULL, err)) < 0 ||
	    (!model_rows && (mlc_error(err, 404, "model '%s' not found", p[1].s), 1)) ||
	    (over = mlc_cap_check(r->db, MLC_CAP_DEPLOYMENTS, p[3].s, 1, err)) < 0 ||
	    mlc_db_exec(r->db, "DELETE FROM deployments WHERE deployment_id = ? "
			"AND status = 'stopped' AND ownerid = ?", del, 2, NULL, NULL, err) < 0 ||
	    mlc_db_exec(r->db, "INSERT INTO deployments (deployment_id, modelid, model_version, "
			"ownerid, placement, inference_data, backend, status, desired, "
			"created_at, updated_at, features) SELECT ?, ?, ?, ?, ?, ?, ?, 'waiting', "
			"'running', ?, ?, ? FROM models WHERE modelid = ?", p, 11,
			NULL, NULL, err) < 0 ||
	    mlc_db_commit(r->db, err) < 0) {
		mlc_db_rollback(r->db);
		if (err->code == 409 && !over)
			mlc_error(err, 409, "deployment '%s' already exists", id);
		return -1;
	}
	return 0;
}

/* sun_path holds 108 bytes with the NUL. */
#define SOCKET_PATH_MAX 107

/* The runtime listens on $MLC_VAR/deployments/<id>/runtime.sock (a new
 * version during a redeploy adds a suffix of up to 12 bytes). */
static int socket_path_fits(const char *id)
{
	return strlen(mlc_config_get("MLC_VAR", "var")) + strlen("/deployments/") + strlen(id) + 12 +
	       strlen("/runtime.sock") <= SOCKET_PATH_MAX;
}

void mlc_h_deployment_add(struct mlc_req *r)
{
	struct mlc_err err = { 0, "" };
	struct mlc_job_src src;
	char id[65], now[32], bundle[96];
	const char *given, *modelid, *backend, *owner;
	json_object *m = mlc_body_or_422(r, r->who.on ? deployment_schema_auth : deployment_schema, 0);

	if (!m)
		return;
	if (!(backend = backend_or_422(r, m)) || mlc_body_owner(r, body_str(m, "ownerid"), &owner) < 0) {
		json_object_put(m);
		return;
	}
	json_object_object_add(m, "ownerid", json_object_new_string(owner));
	memset(&src, 0, sizeof(src));
	given = json_object_get_string(json_object_object_get(m, "deployment_id"));
	if (given && *given)
		snprintf(id, sizeof(id), "%s", given);
	else
		mlc_uuid4(id);
	modelid = json_object_get_string(json_object_object_get(m, "modelid"));
	snprintf(bundle, sizeof(bundle), "deploy-%s.tar.gz", id);
	if (!strcmp(backend, "local") && !socket_path_fits(id)) {
		mlc_reply_422_at(r, "deployment_id", "value_error.any_str.max_length",
				 "deployment_id is too long for this installation: the runtime's socket "
				 "path %s/deployments/<id>/runtime.sock must stay within %d bytes",
				 mlc_config_get("MLC_VAR", "var"), SOCKET_PATH_MAX);
	} else if (mlc_cap_check(r->db, MLC_CAP_DEPLOYMENTS,
				   json_object_get_string(json_object_object_get(m, "ownerid")), 0,
				   &err) < 0 ||
		   mlc_job_src_load(r->db, modelid, &src, &err) < 0 ||
		   /* the bundle's time and the row's: one reading of the database's clock */
		   mlc_db_now(r->db, now, &err) < 0) {
		mlc_reply_err(r, &err);
	} else if (!src.found) {
		mlc_error(r, 404, "model '%s' not found", modelid);
	} else if (!src.file[MLC_ART_MODEL].version) {
		mlc_error(r, 409, "model '%s' has no model file; upload one with "
				 "POST /model/%s/upload (file_kind=model) first", modelid, modelid);
	} else if (write_bundle(r, m, id, &src, now, bundle, &err) < 0 ||
		   insert_deployment(r, m, id, backend, &src, now, &err) < 0) {
		mlc_spool_discard(bundle);
		mlc_reply_err(r, &err);
	} else if (mlc_spool_publish(bundle, &err) < 0) {
		struct mlc_param p[] = { MLC_PSTR(id) };
		struct mlc_err ignored;

		mlc_db_exec(r->db, "DELETE FROM deployments WHERE deployment_id = ?", p, 1,
			    NULL, NULL, &ignored);
		mlc_spool_discard(bundle);
		mlc_reply_err(r, &err);
	} else {
		reply_deployment_or_404(r, 201, id);
	}
	mlc_job_src_release(&src);
	json_object_put(m);
}

/* ---- reading and stopping ---- */

void mlc_h_deployment_status(struct mlc_req *r)
{
	reply_deployment_or_404(r, 200, mlc_param(r, "deployment_id"));
}

void mlc_h_deployment_all(struct mlc_req *r)
{
	long skip, limit;

	if (mlc_paging_or_422(r, MLC_DEFAULT_LIMIT, &skip, &limit) < 0)
		return;
	struct mlc_param p[2];

	mlc_owner_params(r, p);
	mlc_reply_page(r, "SELECT " DEPLOYMENT_COLS " FROM deployments WHERE " MLC_OWNER_COND
		       " ORDER BY created_at, deployment_id LIMIT ? OFFSET ?", p, 2, skip, limit,
		       deployment_from_row);
}

static int first_col(void *ctx, char **c, const unsigned long *l, unsigned n)
{
	snprintf((char *)ctx, 65, "%s", c[0]);
	return 1;
}

static int status_row(void *ctx, char **c, const unsigned long *l, unsigned n)
{
	snprintf((char *)ctx, 16, "%s", c[0]);
	return 1;
}

/*
 * DELETE /deployment/{id}: ask for the runtime to stop, then wait (up to
 * MLC_STOP_WAIT seconds) for mlc-spooler to report it gone, so that a 200
 * means the process no longer exists.  202 when it takes longer.
 */
void mlc_h_deployment_delete(struct mlc_req *r)
{
	const char *id = mlc_param(r, "deployment_id");
	long wait_ms = mlc_config_long("MLC_STOP_WAIT", 15) * 1000, waited = 0;
	struct mlc_param p[] = { MLC_PSTR(id) };
	struct mlc_err err = { 0, "" };
	char status[16] = "";
	long long n;

	{
		struct mlc_param up[3] = { MLC_PSTR(id) };

		mlc_owner_params(r, up + 1);
		/* Another owner's deployment is left alone, and not found. */
		n = mlc_db_exec(r->db, "UPDATE deployments SET desired = 'stopped', "
				"status = IF(status = 'stopped', 'stopped', 'stopping'), "
				"updated_at = UTC_TIMESTAMP(6) "
				"WHERE deployment_id = ? AND " MLC_OWNER_COND, up, 3, NULL, NULL, &err);
		if (n == 0) {
			struct mlc_param q[3] = { MLC_PSTR(id) };

			mlc_owner_params(r, q + 1);
			n = mlc_db_exec(r->db, "SELECT 1 FROM deployments WHERE deployment_id = ? AND "
					MLC_OWNER_COND, q, 3, NULL, NULL, &err);
			if (n == 0) {
				mlc_error(r, 404, "deployment '%s' not found", id);
				return;
			}
		}
	}
	while (n >= 0) {
		n = mlc_db_exec(r->db, "SELECT status FROM deployments WHERE deployment_id = ?",
				p, 1, status_row, status, &err);
		if (n <= 0 || !strcmp(status, "stopped") || waited >= wait_ms)
			break;
		usleep(50000);
		waited += 50;
	}
	if (n < 0) {
		mlc_reply_err(r, &err);
		return;
	}
	if (n == 0) {
		mlc_error(r, 404, "deployment '%s' not found", id);
		return;
	}
	reply_deployment_or_404(r, strcmp(status, "stopped") ? 202 : 200, id);
}

/* ---- inference operations ---- */

/* The API's operationid is the row's UUID (operation_uuid), a string as
 * in the Python service; the integer operations.operationid only orders
 * the rows. */
#define OPERATION_COLS "operation_uuid, ownerid, deployment_id, modelid, data, result, timestamp"

static json_object *operation_from_row(char **c)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "operationid", json_object_new_string(c[0]));
	json_object_object_add(o, "ownerid", json_object_new_string(c[1]));
	json_object_object_add(o, "deploymentid", json_object_new_string(c[2]));
	json_object_object_add(o, "modelid", json_object_new_string(c[3]));
	json_object_object_add(o, "data", mlc_json_raw(c[4]));
	json_object_object_add(o, "result", mlc_json_raw(c[5]));
	json_object_object_add(o, "timestamp", mlc_iso_time(c[6]));
	return o;
}

/* The same as text (jsonbuf.h), for the owner's list. */
static void operation_text(struct mlc_jbuf *b, char **c)
{
	mlc_jbuf_lit(b, "{\"operationid\":");
	mlc_jbuf_str(b, c[0]);
	mlc_jbuf_lit(b, ",\"ownerid\":");
	mlc_jbuf_str(b, c[1]);
	mlc_jbuf_lit(b, ",\"deploymentid\":");
	mlc_jbuf_str(b, c[2]);
	mlc_jbuf_lit(b, ",\"modelid\":");
	mlc_jbuf_str(b, c[3]);
	mlc_jbuf_lit(b, ",\"data\":");
	mlc_jbuf_raw(b, c[4]);
	mlc_jbuf_lit(b, ",\"result\":");
	mlc_jbuf_raw(b, c[5]);
	mlc_jbuf_lit(b, ",\"timestamp\":");
	mlc_jbuf_time(b, c[6]);
	mlc_jbuf_lit(b, "}");
}

/* Record one operation under a new UUID, written to opid, at when (a
 * client's time) or, when when is NULL, the database's now; 0, or -1 with
 * err. */
int mlc_record_operation(struct mlc_req *r, const char *ownerid, const char *deploymentid,
			 const char *modelid, json_object *data, json_object *result,
			 const char *when, char opid[37], struct mlc_err *err)
{
	mlc_uuid4(opid);

	struct mlc_param p[] = { MLC_PSTR(opid), MLC_PSTR(ownerid), MLC_PSTR(deploymentid),
				 MLC_PSTR(modelid), mlc_json_param(data), mlc_json_param(result),
				 when ? MLC_PSTR(when) : MLC_PNULL };
	if (mlc_db_exec(r->db, "INSERT INTO operations (operation_uuid, ownerid, deployment_id, "
			"modelid, data, result, timestamp) "
			"VALUES (?, ?, ?, ?, ?, ?, COALESCE(?, UTC_TIMESTAMP(6)))", p, 7,
			NULL, NULL, err) < 0)
		return -1;
	return 0;
}

void mlc_h_operation_add(struct mlc_req *r)
{
	struct mlc_err err = { 0, "" };
	json_object *m = mlc_body_or_422(r, r->who.on ? operation_schema_auth : operation_schema, 0);
	json_object *ts, *op = NULL;
	const char *dep, *modelid, *owner;
	char when[32], id[37], dep_model[65] = "";

	if (!m)
		return;
	dep = json_object_get_string(json_object_object_get(m, "deploymentid"));
	modelid = body_str(m, "modelid");
	ts = json_object_object_get(m, "timestamp");
	/* Without the client's time: the database's now (mlc_record_operation). */
	if (ts)
		mlc_parse_iso8601(json_object_get_string(ts), when);
	{
		/* The caller's deployment (an admin's: any), and its model. */
		struct mlc_param p[3] = { MLC_PSTR(dep) };
		long long n;

		mlc_owner_params(r, p + 1);
		n = mlc_db_exec(r->db, "SELECT modelid FROM deployments WHERE deployment_id = ? AND "
				MLC_OWNER_COND, p, 3, first_col, dep_model, &err);
		if (n == 0) {
			mlc_error(r, 404, "deployment '%s' not found", dep);
			goto out;
		}
		if (n < 0)
			goto fail;
	}
	if (modelid && strcmp(modelid, dep_model)) {
		mlc_reply_422_at(r, "modelid", "value_error.modelid",
				 "modelid '%s' is not the model of deployment '%s' ('%s'); leave it "
				 "out or send that one", modelid, dep, dep_model);
		goto out;
	}
	if (mlc_body_owner(r, body_str(m, "ownerid"), &owner) < 0)
		goto out;
	if (mlc_record_operation(r, owner, dep, dep_model, json_object_object_get(m, "data"),
				 json_object_object_get(m, "result"), ts ? when : NULL, id, &err) < 0)
		goto fail;
	{
		struct mlc_param p[] = { MLC_PSTR(id) };

		if (mlc_load_row(r, "SELECT " OPERATION_COLS " FROM operations WHERE operation_uuid = ?",
				 p, 1, operation_from_row, &op, &err) < 0)
			goto fail;
	}
	mlc_reply_json(r, 201, op);
	goto out;
fail:
	mlc_reply_err(r, &err);
out:
	json_object_put(m);
}

/* ---- the owner's list from the worker's cache (rowcache.h) ----
 *
 * A page first asks the database for its operationids and row_versions
 * alone (the index operations_owner holds them: one index-only statement,
 * one row longer than the page, which says whether a next page exists),
 * then takes each operation's text at that version from the cache; a few
 * it lacks are read by id.  A row deleted is not in the list the database
 * gave, so it is never shown; one changed (MLConnector never changes one,
 * an administrator may) has another version, so it is read again.  A page
 * that lacks many, or whose rows are large, streams from the database one
 * row at a time as without the cache (and fills it): the worker holds at
 * most OP_PAGE_BYTES of a page.
 */

/* Pages up to this many rows go through the cache; longer ones and
 * "every row" stream from the database. */
#define OP_PAGE_MAX 1000
/* Up to this many missing operations are read one by one (by primary
 * key); more, and the page streams. */
#define OP_FETCH_ONE_BY_ONE 8
/* A page assembled in memory holds at most about this many bytes. */
#define OP_PAGE_BYTES (1024 * 1024)
/* A row read by id is used only up to this size (a longer one is not
 * kept by the cache either): past it, the page streams. */
#define OP_ROW_MAX (64 * 1024)

/* The page statement, with operationid last for the cache. */
#define OP_PAGE "SELECT " OPERATION_COLS ", operationid, " MLC_ROW_VERSION " FROM operations " \
	"WHERE ownerid = ? ORDER BY operationid DESC LIMIT ? OFFSET ?"
#define OP_KEYS "SELECT operationid, " MLC_ROW_VERSION " FROM operations WHERE ownerid = ? " \
	"ORDER BY operationid DESC LIMIT ? OFFSET ?"
#define OP_BY_ID "SELECT " OPERATION_COLS ", operationid, " MLC_ROW_VERSION " FROM operations " \
	"WHERE operationid = ?"
#define OP_ID_COL 7
#define OP_VERSION_COL 8

/* A row of OP_PAGE or OP_BY_ID as text, kept in the cache. */
static void operation_text_keep(struct mlc_jbuf *b, char **c)
{
	size_t at = b->len;

	operation_text(b, c);
	mlc_opcache_put(strtoull(c[OP_ID_COL], NULL, 10), strtoull(c[OP_VERSION_COL], NULL, 10),
			b->s + at, b->len - at);
}

struct op_key {
	unsigned long long id, version;
	size_t at, len;		/* its text in the fetched buffer, when len */
};

static int op_key_row(void *ctx, char **cols, const unsigned long *lens, unsigned n)
{
	struct op_key *k = ctx;

	k->id = strtoull(cols[0], NULL, 10);
	k->version = strtoull(cols[1], NULL, 10);
	return 0;
}

/* Buffers reused from request to request. */
static struct mlc_jbuf op_body, op_fetched;

static int op_fetched_row(void *ctx, char **cols, const unsigned long *lens, unsigned n)
{
	struct op_key *k = ctx;

	k->at = op_fetched.len;
	operation_text_keep(&op_fetched, cols);
	k->len = op_fetched.len - k->at;
	return 1;
}

struct op_keys {
	struct op_key *keys;
	size_t n, cap;
};

static int op_keys_row(void *ctx, char **cols, const unsigned long *lens, unsigned n)
{
	struct op_keys *l = ctx;

	if (l->n == l->cap)
		return 1;
	op_key_row(&l->keys[l->n++], cols, lens, n);
	return 0;
}

/* 1 when the page was answered from the cache (and the database's ids),
 * 0 when it must stream instead (nothing sent), -1 when an error reply
 * went out. */
static int reply_operations_cached(struct mlc_req *r, const char *owner, long skip, long limit)
{
	struct mlc_param p[] = { MLC_PSTR(owner), MLC_PLONG((long long)limit + 1),
				 MLC_PLONG(skip) };
	struct op_keys l = { NULL, 0, (size_t)limit + 1 };
	struct mlc_err err = { 0, "" };
	size_t i, missing = 0, bytes = 0, len;
	const char *text;
	int more, done = 0;

	l.keys = mlc_xcalloc(l.cap, sizeof(*l.keys));
	if (mlc_db_exec(r->db, OP_KEYS, p, 3, op_keys_row, &l, &err) < 0)
		goto fail;
	more = l.n > (size_t)limit;
	if (more)
		l.n--;
	for (i = 0; i < l.n && missing <= OP_FETCH_ONE_BY_ONE && bytes <= OP_PAGE_BYTES; i++) {
		if ((text = mlc_opcache_get(l.keys[i].id, l.keys[i].version, &len)))
			bytes += len;
		else
			missing++;
	}
	if (missing > OP_FETCH_ONE_BY_ONE || bytes > OP_PAGE_BYTES)
		goto stream;
	mlc_jbuf_reset(&op_fetched);
	mlc_jbuf_reset(&op_body);
	for (i = 0; i < l.n; i++) {
		struct op_key *k = &l.keys[i];

		if ((text = mlc_opcache_get(k->id, k->version, &len))) {
			/* copied at once: a read below may replace the entry */
		} else {
			struct mlc_param ip[] = { MLC_PLONG((long long)k->id) };
			long long n;

			k->len = 0;
			if ((n = mlc_db_exec(r->db, OP_BY_ID, ip, 1, op_fetched_row, k, &err)) < 0)
				goto fail;
			if (!n)
				continue;	/* deleted since it was listed */
			if (k->len > OP_ROW_MAX || op_body.len + k->len > OP_PAGE_BYTES)
				goto stream;
			text = op_fetched.s + k->at;
			len = k->len;
		}
		if (op_body.len)
			mlc_jbuf_lit(&op_body, ",");
		mlc_jbuf_put(&op_body, text, len);
	}
	mlc_reply_page_body(r, skip, limit, more, op_body.s ? op_body.s : "", op_body.len);
	done = 1;
stream:
	free(l.keys);
	return done;
fail:
	free(l.keys);
	mlc_reply_err(r, &err);
	return -1;
}

/* Newest first: the order operations were recorded in, not the
 * client-supplied timestamps, which may arrive out of order.  Every one
 * unless asked for less: the published API has no paging here. */
void mlc_h_operations_by_owner(struct mlc_req *r)
{
	long skip, limit;

	if (mlc_paging_or_422(r, MLC_NO_LIMIT, &skip, &limit) < 0)
		return;
	/* Another owner's operations are not found, whether there are any or
	 * not: the answer says nothing about that owner. */
	if (!mlc_owns(r, mlc_param(r, "ownerid"))) {
		mlc_error(r, 404, "operations of owner '%s' not found", mlc_param(r, "ownerid"));
		return;
	}
	if (mlc_opcache_on() && limit > 0 && limit <= OP_PAGE_MAX &&
	    reply_operations_cached(r, mlc_param(r, "ownerid"), skip, limit) != 0)
		return;
	struct mlc_param p[] = { MLC_PSTR(mlc_param(r, "ownerid")) };
	mlc_reply_page_text(r, OP_PAGE, p, 1, skip, limit, operation_text_keep);
}
