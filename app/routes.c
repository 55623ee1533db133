/*
 * routes.c - the one table of routes, and the dispatcher that checks each
 * row's flags so that no handler repeats them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "jsonutil.h"
#include "log.h"
#include "routes.h"
#include "validate.h"

static const struct mlc_route routes[] = {
	{ "GET",    "/health",                    mlc_h_health, 0 },
	{ "POST",   "/model/add",                 mlc_h_model_add, MLC_R_JSON },
	{ "GET",    "/model/all",                 mlc_h_model_all, 0 },
	{ "GET",    "/model/search",              mlc_h_model_search, 0 },
	{ "GET",    "/model/getkind/{modelkind}", mlc_h_model_getkind, 0 },
	{ "POST",   "/model/{model_id}/upload",   mlc_h_model_upload, MLC_R_MODEL_ID },
	{ "GET",    "/model/{model_id}/files",    mlc_h_model_files, MLC_R_MODEL_ID },
	{ "GET",    "/model/{model_id}/files/{kind}", mlc_h_model_download, MLC_R_MODEL_ID },
	{ "POST",   "/model/{model_id}/drift/run", mlc_h_drift_run, MLC_R_MODEL_ID },
	{ "GET",    "/model/{model_id}/drift",    mlc_h_drift_list, MLC_R_MODEL_ID },
	{ "GET",    "/model/{model_id}/drift/summary", mlc_h_drift_summary, MLC_R_MODEL_ID },
	{ "GET",    "/model/{model_id}",          mlc_h_model_get, MLC_R_MODEL_ID },
	{ "POST",   "/deployment/add",            mlc_h_deployment_add, MLC_R_JSON },
	{ "POST",   "/deployment/add/operation",  mlc_h_operation_add, MLC_R_JSON },
	{ "GET",    "/deployment/all",            mlc_h_deployment_all, 0 },
	{ "GET",    "/deployment/get/status/{deployment_id}", mlc_h_deployment_status, MLC_R_DEPLOYMENT_ID },
	{ "GET",    "/deployment/get/opos/{ownerid}", mlc_h_operations_by_owner, 0 },
	{ "DELETE", "/deployment/{deployment_id}", mlc_h_deployment_delete, MLC_R_DEPLOYMENT_ID },
	{ "POST",   "/deployment/{deployment_id}/predict", mlc_h_predict, MLC_R_JSON | MLC_R_DEPLOYMENT_ID },
	{ "POST",   "/mltraining/add",            mlc_h_training_add, MLC_R_JSON },
	{ "GET",    "/mltraining/all",            mlc_h_training_all, 0 },
	{ "GET",    "/mltraining/status/{training_id}", mlc_h_training_status, 0 },
	{ "GET",    "/mltraining/{training_id}/log", mlc_h_training_log, 0 },
	{ "PATCH",  "/model/{model_id}",          mlc_h_model_patch, MLC_R_JSON | MLC_R_MODEL_ID },
	{ "DELETE", "/model/{model_id}",          mlc_h_model_delete, MLC_R_MODEL_ID },
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/* Python writes tuples with ( ), and so does one of the published
 * examples: say how JSON writes a list when that is what went wrong. */
static void add_hint(const char *buf, size_t len, char *msg, size_t cap)
{
	const char *at = strstr(msg, "at byte ");
	size_t off, used = strlen(msg);

	if (!at || sscanf(at, "at byte %zu", &off) != 1 || off >= len || buf[off] != '(')
		return;
	snprintf(msg + used, cap - used, "; JSON lists are written with [ ], not ( )");
}

/* Read and parse the JSON body, or reply 413/422 and return -1. */
static int parse_json_body(struct mlc_req *r)
{
	size_t max = (size_t)mlc_config_long("MLC_MAX_BODY", 1048576), len;
	char *buf, msg[256];
	json_object *errors;
	int rc;

	if (mlc_read_body_or_reply(r, max, &buf, &len) < 0)
		return -1;
	rc = mlc_json_parse(buf, len, &r->body, msg, sizeof(msg));
	if (rc < 0)
		add_hint(buf, len, msg, sizeof(msg));
	free(buf);
	if (rc == 0)
		return 0;
	/* FastAPI reports a body it cannot decode as a 422 at ["body", offset]. */
	errors = json_object_new_array();
	mlc_validate_error(errors, msg, "value_error.jsondecode", "body", NULL);
	mlc_reply_422(r, errors);
	return -1;
}

/* A canonical lowercase UUID, as mlc_uuid4 makes them. */
static int is_model_id(const char *s)
{
	int i;

	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
			return 0;
		}
	}
	return s[36] == '\0';
}

/* Deployment ids are [A-Za-z0-9._-]{1,64}: anything else names none (and
 * a trailing space must not find one, as MariaDB's comparison would). */
static int is_deployment_id(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!((s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= 'a' && s[n] <= 'z') ||
		      (s[n] >= '0' && s[n] <= '9') || s[n] == '.' || s[n] == '_' || s[n] == '-'))
			return 0;
	return n >= 1 && n <= 64;
}

static void reply_no_route(struct mlc_req *r)
{
	char allow[128], hdr[160];

	if (!r->match.path_matched) {
		mlc_reply_detail(r, 404, "no route for %s %s", r->method, r->path);
		return;
	}
	mlc_route_allowed(routes, NROUTES, r->path, allow, sizeof(allow));
	snprintf(hdr, sizeof(hdr), "Allow: %s", allow);
	mlc_reply_header(r, hdr);
	mlc_reply_detail(r, 405, "method %s not allowed on %s (allowed: %s)",
			 r->method, r->path, allow);
}

void mlc_dispatch(struct mlc_req *r)
{
	const char *qs = FCGX_GetParam("QUERY_STRING", r->fcgx->envp);
	char msg[256];
	json_object *errors;

	if (mlc_route_match(routes, NROUTES, r->method, r->path, &r->match) < 0) {
		reply_no_route(r);
		return;
	}
	if (mlc_query_parse(&r->query, qs, msg, sizeof(msg)) < 0) {
		errors = json_object_new_array();
		mlc_validate_error(errors, msg, "value_error.query", "query", NULL);
		mlc_reply_422(r, errors);
		return;
	}
	if ((r->match.route->flags & MLC_R_MODEL_ID) && !is_model_id(mlc_param(r, "model_id"))) {
		/* Model ids are service-made UUIDs: anything else names no model
		 * (and never reaches a file path). */
		mlc_reply_detail(r, 404, "model '%s' not found", mlc_param(r, "model_id"));
		return;
	}
	if ((r->match.route->flags & MLC_R_DEPLOYMENT_ID) &&
	    !is_deployment_id(mlc_param(r, "deployment_id"))) {
		mlc_reply_detail(r, 404, "deployment '%s' not found", mlc_param(r, "deployment_id"));
		return;
	}
	if ((r->match.route->flags & MLC_R_JSON) && parse_json_body(r) < 0)
		return;
	((mlc_handler)r->match.route->handler)(r);
	if (!r->status)
		mlc_reply_detail(r, 500, "handler for %s %s sent no reply", r->method, r->path);
}
