/*
 * routes.c - the one table of routes, and the dispatcher that checks each
 * row's flags so that no handler repeats them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "conf.h"
#include "cors.h"
#include "jsonutil.h"
#include "log.h"
#include "metrics.h"
#include "routes.h"
#include "validate.h"

/*
 * Method, pattern, handler, flags (checked by mlc_dispatch) and the scope a
 * token needs (auth.h): GET routes read, everything that changes state -
 * predictions too, which record an operation - writes, /metrics admin;
 * /health and the job-file routes (their own credential) need none.
 * t/0855-auth-matrix.t reads this table.
 */
static const struct mlc_route routes[] = {
	{ "GET",    "/health",                    mlc_h_health, 0, MLC_SCOPE_NONE },
	{ "POST",   "/model/add",                 mlc_h_model_add, MLC_R_JSON, MLC_SCOPE_WRITE },
	{ "GET",    "/model/all",                 mlc_h_model_all, 0, MLC_SCOPE_READ },
	{ "GET",    "/model/search",              mlc_h_model_search, 0, MLC_SCOPE_READ },
	{ "GET",    "/model/getkind/{modelkind}", mlc_h_model_getkind, 0, MLC_SCOPE_READ },
	{ "POST",   "/model/{model_id}/upload",   mlc_h_model_upload, MLC_R_MODEL_ID, MLC_SCOPE_WRITE },
	{ "GET",    "/model/{model_id}/files",    mlc_h_model_files, MLC_R_MODEL_ID, MLC_SCOPE_READ },
	{ "GET",    "/model/{model_id}/files/{kind}", mlc_h_model_download, MLC_R_MODEL_ID, MLC_SCOPE_READ },
	{ "POST",   "/model/{model_id}/drift/run", mlc_h_drift_run, MLC_R_MODEL_ID, MLC_SCOPE_WRITE },
	{ "GET",    "/model/{model_id}/drift",    mlc_h_drift_list, MLC_R_MODEL_ID, MLC_SCOPE_READ },
	{ "GET",    "/model/{model_id}/drift/summary", mlc_h_drift_summary, MLC_R_MODEL_ID, MLC_SCOPE_READ },
	{ "GET",    "/model/{model_id}",          mlc_h_model_get, MLC_R_MODEL_ID, MLC_SCOPE_READ },
	{ "POST",   "/deployment/add",            mlc_h_deployment_add, MLC_R_JSON, MLC_SCOPE_WRITE },
	{ "POST",   "/deployment/add/operation",  mlc_h_operation_add, MLC_R_JSON, MLC_SCOPE_WRITE },
	{ "GET",    "/deployment/all",            mlc_h_deployment_all, 0, MLC_SCOPE_READ },
	{ "GET",    "/deployment/get/status/{deployment_id}", mlc_h_deployment_status, MLC_R_DEPLOYMENT_ID, MLC_SCOPE_READ },
	{ "GET",    "/deployment/get/opos/{ownerid}", mlc_h_operations_by_owner, 0, MLC_SCOPE_READ },
	{ "DELETE", "/deployment/{deployment_id}", mlc_h_deployment_delete, MLC_R_DEPLOYMENT_ID, MLC_SCOPE_WRITE },
	{ "POST",   "/deployment/{deployment_id}/predict", mlc_h_predict, MLC_R_JSON | MLC_R_DEPLOYMENT_ID, MLC_SCOPE_WRITE },
	/* Remote runtimes' job files: their own credential (X-MLC-Job-Token,
	 * route-jobfiles.c), no bearer token. */
	{ "GET",    "/deployment/{deployment_id}/bundle", mlc_h_deployment_bundle, MLC_R_DEPLOYMENT_ID, MLC_SCOPE_NONE },
	{ "POST",   "/mltraining/add",            mlc_h_training_add, MLC_R_JSON, MLC_SCOPE_WRITE },
	{ "GET",    "/mltraining/all",            mlc_h_training_all, 0, MLC_SCOPE_READ },
	{ "GET",    "/mltraining/status/{training_id}", mlc_h_training_status, 0, MLC_SCOPE_READ },
	{ "GET",    "/mltraining/{training_id}/log", mlc_h_training_log, 0, MLC_SCOPE_READ },
	{ "GET",    "/mltraining/{training_id}/bundle", mlc_h_training_bundle, 0, MLC_SCOPE_NONE },
	{ "PUT",    "/mltraining/{training_id}/model", mlc_h_training_model, 0, MLC_SCOPE_NONE },
	{ "PATCH",  "/model/{model_id}",          mlc_h_model_patch, MLC_R_JSON | MLC_R_MODEL_ID, MLC_SCOPE_WRITE },
	{ "DELETE", "/model/{model_id}",          mlc_h_model_delete, MLC_R_MODEL_ID, MLC_SCOPE_WRITE },
	/* Operators' counters (docs/OPERATIONS.md). */
	{ "GET",    "/metrics",                   mlc_h_metrics, 0, MLC_SCOPE_ADMIN },
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))
_Static_assert(NROUTES <= MLC_METRICS_MAX_ROUTES, "metrics.h counts MLC_METRICS_MAX_ROUTES routes");

const struct mlc_route *mlc_routes(size_t *n)
{
	*n = NROUTES;
	return routes;
}

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

/* A path without a route that would have one without its trailing
 * slashes gets a 307 there, query kept, as FastAPI's redirect_slashes
 * answers; 307 keeps the method and body. */
static void reply_no_route(struct mlc_req *r, const char *qs)
{
	char allow[128], *to;

	if (!r->match.path_matched) {
		to = mlc_route_slash_redirect(routes, NROUTES, r->path, qs);
		if (to)
			mlc_reply_empty(r, 307, to);
		else
			mlc_error(r, 404, "no route for %s %s", r->method, r->path);
		free(to);
		return;
	}
	mlc_route_allowed(routes, NROUTES, r->path, allow, sizeof(allow));
	mlc_reply_headerf(r, "Allow: %s", allow);
	mlc_error(r, 405, "method %s not allowed on %s (allowed: %s)",
			 r->method, r->path, allow);
}

/* ---- CORS (MLC_CORS_ORIGINS) ---- */

/* Every method of the table, each once, in table order. */
static void all_methods(char *buf, size_t cap)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < NROUTES; i++) {
		const char *m = routes[i].method;
		size_t len = strlen(m), at;
		int seen = 0;

		for (size_t j = 0; j < i && !seen; j++)
			seen = !strcmp(routes[j].method, m);
		at = used ? used + 2 : 0;
		if (seen || at + len + 1 > cap)
			continue;
		memcpy(buf + used, ", ", at - used);
		memcpy(buf + at, m, len + 1);
		used = at + len;
	}
}

/* The Access-Control-Allow-Methods of a preflight: the methods of the
 * path, else of the path a trailing-slash redirect leads to, else all. */
static void preflight_methods(struct mlc_req *r, char *buf, size_t cap)
{
	char *to;

	mlc_route_allowed(routes, NROUTES, r->path, buf, cap);
	if (*buf)
		return;
	to = mlc_route_slash_redirect(routes, NROUTES, r->path, NULL);
	if (to)
		mlc_route_allowed(routes, NROUTES, to, buf, cap);
	free(to);
	if (!*buf)
		all_methods(buf, cap);
}

/*
 * With MLC_CORS_ORIGINS set and an Origin it allows, every answer (errors
 * and redirects included) carries Access-Control-Allow-Origin and
 * Access-Control-Expose-Headers; a preflight (OPTIONS with Origin and
 * Access-Control-Request-Method) is answered here, 200, or 400 for an
 * origin the list does not allow, as Starlette's CORSMiddleware does.
 * A preflight never carries credentials, so this runs before any check
 * of them.  Returns 1 when the request has been answered.
 */
static int cors(struct mlc_req *r)
{
	const char *origin = FCGX_GetParam("HTTP_ORIGIN", r->fcgx->envp);
	const char *want = FCGX_GetParam("HTTP_ACCESS_CONTROL_REQUEST_METHOD", r->fcgx->envp);
	enum mlc_cors c = mlc_cors_check(mlc_config_get("MLC_CORS_ORIGINS", NULL), origin);
	int preflight = !strcmp(r->method, "OPTIONS") && want && *want;
	char methods[128], names[1024];

	if (c == MLC_CORS_OFF || (c == MLC_CORS_DENIED && !preflight))
		return 0;
	if (c == MLC_CORS_DENIED) {
		mlc_error(r, 400, "Disallowed CORS origin");
		return 1;
	}
	/* mlc_cors_check vouches for an echoed origin: short, printable. */
	mlc_reply_headerf(r, "Access-Control-Allow-Origin: %s", c == MLC_CORS_ANY ? "*" : origin);
	if (c == MLC_CORS_ORIGIN)
		mlc_reply_header(r, "Vary: Origin");
	if (!preflight) {
		mlc_reply_header(r, "Access-Control-Expose-Headers: " MLC_CORS_EXPOSE);
		return 0;
	}
	preflight_methods(r, methods, sizeof(methods));
	mlc_reply_headerf(r, "Access-Control-Allow-Methods: %s", methods);
	mlc_cors_allow_headers(FCGX_GetParam("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", r->fcgx->envp),
			       names, sizeof(names));
	mlc_reply_headerf(r, "Access-Control-Allow-Headers: %s", names);
	mlc_reply_headerf(r, "Access-Control-Max-Age: %d", MLC_CORS_MAX_AGE);
	mlc_reply_empty(r, 200, NULL);
	return 1;
}

static void dispatch(struct mlc_req *r)
{
	const char *qs = FCGX_GetParam("QUERY_STRING", r->fcgx->envp);
	char msg[256];
	json_object *errors;

	/* CORS first: its headers go on every answer, and a preflight needs
	 * no route match, body or credentials. */
	if (cors(r))
		return;
	if (mlc_route_match(routes, NROUTES, r->method, r->path, &r->match) < 0) {
		reply_no_route(r, qs);
		return;
	}
	/* The route template, for nginx's access log (which keeps it from the
	 * client); the owner goes the same way once the request has one
	 * (mlc_reply_owner). */
	mlc_reply_headerf(r, "X-Route: %s", r->match.route->pattern);
	/* ---- authentication: the one place a route's scope is checked.
	 * Before anything else of the request is read, so that a caller
	 * without a valid token learns nothing about ids or bodies. ---- */
	if (mlc_auth_check(r, r->match.route->scope) < 0)
		return;
	if (r->who.on)
		mlc_reply_owner(r, r->who.owner);
	/* ---- the route's own checks ---- */
	if (mlc_query_parse(&r->query, qs, msg, sizeof(msg)) < 0) {
		errors = json_object_new_array();
		mlc_validate_error(errors, msg, "value_error.query", "query", NULL);
		mlc_reply_422(r, errors);
		return;
	}
	if ((r->match.route->flags & MLC_R_MODEL_ID) && !is_model_id(mlc_param(r, "model_id"))) {
		/* Model ids are service-made UUIDs: anything else names no model
		 * (and never reaches a file path). */
		mlc_error(r, 404, "model '%s' not found", mlc_param(r, "model_id"));
		return;
	}
	if ((r->match.route->flags & MLC_R_DEPLOYMENT_ID) &&
	    !mlc_is_deployment_id(mlc_param(r, "deployment_id"))) {
		/* No deployment has an id outside the rule (and a trailing
		 * space must not find one, as MariaDB's comparison would). */
		mlc_error(r, 404, "deployment '%s' not found", mlc_param(r, "deployment_id"));
		return;
	}
	if ((r->match.route->flags & MLC_R_JSON) && parse_json_body(r) < 0)
		return;
	((mlc_handler)r->match.route->handler)(r);
	if (!r->status)
		mlc_error(r, 500, "handler for %s %s sent no reply", r->method, r->path);
}

void mlc_dispatch(struct mlc_req *r)
{
	double start = mlc_metrics_now();

	dispatch(r);
	mlc_metrics_request(r->match.route ? (int)(r->match.route - routes) : -1, r->status,
			    mlc_metrics_now() - start);
}
