/*
 * routes.h - the route table and the handlers it names, one family of
 * routes per file app/route-<family>.c (route-health.c, route-models.c,
 * ...); the helpers, parsers and infrastructure they use have unprefixed
 * names (http.c, db.c, multipart.c, ...).  Every handler reads top to
 * bottom as parse -> validate -> act -> reply; the checks a flag declares
 * are done once by mlc_dispatch before the handler runs.
 */
#ifndef MLC_ROUTES_H
#define MLC_ROUTES_H

#include "http.h"

typedef void (*mlc_handler)(struct mlc_req *r);

#define MLC_R_JSON 0x1	/* the body must be a JSON value: parsed into r->body or 413/422 */
#define MLC_R_MODEL_ID 0x2	/* {model_id} must look like a model id (a UUID), or 404 */
#define MLC_R_DEPLOYMENT_ID 0x4	/* {deployment_id} must be [A-Za-z0-9._-]{1,64}, or 404 */

void mlc_dispatch(struct mlc_req *r);

/* The service's route table, in the order mlc_dispatch matches it, and
 * its length in *n (for the tests: t/unit/test-router.c; a row's index
 * names it in metrics.c). */
const struct mlc_route *mlc_routes(size_t *n);

/* route-health.c */
void mlc_h_health(struct mlc_req *r);

/* route-models.c */
void mlc_h_model_add(struct mlc_req *r);
void mlc_h_model_all(struct mlc_req *r);
void mlc_h_model_getkind(struct mlc_req *r);
void mlc_h_model_search(struct mlc_req *r);
void mlc_h_model_get(struct mlc_req *r);
void mlc_h_model_patch(struct mlc_req *r);
void mlc_h_model_delete(struct mlc_req *r);
/* 0 when the model exists; otherwise replies 404 (or the database error)
 * and returns -1. */
int mlc_model_exists_or_404(struct mlc_req *r, const char *id);
/* After a lost COMMIT: whether the row sql finds landed (see route-models.c);
 * 1 yes, 0 no, -1 cannot tell. */
int mlc_model_row_landed(struct mlc_req *r, const char *modelid, const char *sql,
			 const struct mlc_param *p, unsigned np);
/* 0 when the model exists and the caller may act on it as its owner
 * (mlc_owns); otherwise replies 404, 403 ("... only its owner or an admin
 * may <what> it") or the database error, and returns -1. */
int mlc_model_owned_or_reply(struct mlc_req *r, const char *id, const char *what);

/* route-artifacts.c */
void mlc_h_model_upload(struct mlc_req *r);
void mlc_h_model_files(struct mlc_req *r);
void mlc_h_model_download(struct mlc_req *r);

/* route-deployments.c */
void mlc_h_deployment_add(struct mlc_req *r);
void mlc_h_deployment_all(struct mlc_req *r);
void mlc_h_deployment_status(struct mlc_req *r);
void mlc_h_deployment_delete(struct mlc_req *r);
void mlc_h_operation_add(struct mlc_req *r);
void mlc_h_operations_by_owner(struct mlc_req *r);
/* Record an inference operation; its new UUID (the API's operationid)
 * goes to opid.  0, or -1 with err. */
int mlc_record_operation(struct mlc_req *r, const char *ownerid, const char *deploymentid,
			 const char *modelid, json_object *data, json_object *result,
			 const char *when, char opid[37], struct mlc_err *err);

/* route-predict.c */
void mlc_h_predict(struct mlc_req *r);
/* Drop the featurelists the worker keeps (a stopping worker; tests). */
void mlc_predict_cache_release(void);

/* route-training.c */
void mlc_h_training_add(struct mlc_req *r);
void mlc_h_training_status(struct mlc_req *r);
void mlc_h_training_all(struct mlc_req *r);
void mlc_h_training_log(struct mlc_req *r);

/* route-jobfiles.c: the files remote runtimes and trainings fetch and send */
void mlc_h_deployment_bundle(struct mlc_req *r);
void mlc_h_training_bundle(struct mlc_req *r);
void mlc_h_training_model(struct mlc_req *r);

/* metrics.c */
void mlc_h_metrics(struct mlc_req *r);

/* route-drift.c */
void mlc_h_drift_run(struct mlc_req *r);
void mlc_h_drift_list(struct mlc_req *r);
void mlc_h_drift_summary(struct mlc_req *r);

#endif
