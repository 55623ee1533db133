/*
 * route-health.c - GET /health: the service answers and its database does (with
 * every migration this mlc-api needs, see db.c), and which version runs.
 */
#include "buildinfo.h"
#include "routes.h"

void mlc_h_health(struct mlc_req *r)
{
	struct mlc_err err = { 0, "" };
	json_object *o;

	if (mlc_db_ping(r->db, &err) < 0) {
		mlc_error(r, 503, "%s", err.msg);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "status", json_object_new_string("ok"));
	json_object_object_add(o, "database", json_object_new_string("ok"));
	json_object_object_add(o, "version", json_object_new_string(MLC_VERSION));
	mlc_reply_json(r, 200, o);
}
