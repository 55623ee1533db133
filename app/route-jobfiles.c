/*
 * route-jobfiles.c - the files remote runtimes and trainings exchange with the
 * API (the kubernetes and mlsysops backends, docs/SCALING.md):
 *
 *   GET /deployment/{deployment_id}/bundle   the deployment's bundle
 *   GET /mltraining/{training_id}/bundle     the training's bundle
 *   PUT /mltraining/{training_id}/model      the model a training wrote
 *
 * A request carries the job credential the spooler made for that one job
 * in the X-MLC-Job-Token header; the row holds only its SHA-256
 * (job_token_sha256).  The bundle is the file the spooler packed into
 * $MLC_VAR/bundles/, sent by nginx (X-Accel-Redirect to /_bundles/).  The
 * model goes to spool/tmp/model-<id>.pkl and is renamed into spool/new/,
 * where the spooler takes it and stores it as an upload would.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "conf.h"
#include "log.h"
#include "routes.h"
#include "spool.h"
#include "validate.h"

#define TOKEN_MAX 128
#define CHUNK (1 << 16)

struct job_row {
	int found;
	char sha[65];
	char status[16];
	char desired[16];
};

static int job_row(void *ctx, char **c, const unsigned long *l, unsigned n)
{
	struct job_row *j = ctx;

	(void)l;
	j->found = 1;
	snprintf(j->sha, sizeof(j->sha), "%s", c[0] ? c[0] : "");
	snprintf(j->status, sizeof(j->status), "%s", c[1] ? c[1] : "");
	snprintf(j->desired, sizeof(j->desired), "%s", n > 2 && c[2] ? c[2] : "running");
	return 1;
}

/* Lower-case hex SHA-256 of s. */
static void sha256_hex(const char *s, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0, i;

	EVP_Digest(s, strlen(s), md, &len, EVP_sha256(), NULL);
	for (i = 0; i < len && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[64] = '\0';
}

/*
 * Check the request's credential against the job's row; 0 when it may go
 * on, else -1 after replying: 401 without a credential, 403 when it is not
 * the job's (an unknown id answers the same), 409 when the job is not in
 * a state that needs its files.
 */
static int authorised(struct mlc_req *r, int training, const char *id)
{
	const char *token = FCGX_GetParam("HTTP_X_MLC_JOB_TOKEN", r->fcgx->envp);
	struct mlc_param p[] = { MLC_PSTR(id) };
	struct mlc_err err = { 0, "" };
	struct job_row j = { 0 };
	char got[65];
	int active;

	if (!token || !*token) {
		mlc_error(r, 401, "this route takes the job credential of the %s in the "
				 "X-MLC-Job-Token header", training ? "training" : "deployment");
		return -1;
	}
	if (!mlc_is_deployment_id(id) || strlen(token) > TOKEN_MAX) {
		mlc_error(r, 403, "the job credential does not open this %s",
				 training ? "training" : "deployment");
		return -1;
	}
	if (mlc_db_exec(r->db, training ?
			"SELECT job_token_sha256, status FROM trainings WHERE training_id = ?" :
			"SELECT job_token_sha256, status, desired FROM deployments "
			"WHERE deployment_id = ?", p, 1, job_row, &j, &err) < 0) {
		mlc_reply_err(r, &err);
		return -1;
	}
	sha256_hex(token, got);
	if (!j.found || strlen(j.sha) != 64 || CRYPTO_memcmp(got, j.sha, 64)) {
		mlc_log("warn", r->request_id, "refused a job credential for %s %s",
			training ? "training" : "deployment", id);
		mlc_error(r, 403, "the job credential does not open this %s",
				 training ? "training" : "deployment");
		return -1;
	}
	active = training ? !strcmp(j.status, "running") :
		 (!strcmp(j.desired, "running") &&
		  (!strcmp(j.status, "building") || !strcmp(j.status, "deployed")));
	if (!active) {
		mlc_error(r, 409, "%s '%s' is %s; its files are no longer served",
				 training ? "training" : "deployment", id, j.status);
		return -1;
	}
	return 0;
}

static void send_bundle(struct mlc_req *r, int training, const char *id)
{
	char rel[96];

	if (authorised(r, training, id) < 0)
		return;
	snprintf(rel, sizeof(rel), "%s-%s.tar.gz", training ? "train" : "deploy", id);
	mlc_reply_accel_in(r, "/_bundles/", rel, rel, NULL);
}

void mlc_h_deployment_bundle(struct mlc_req *r)
{
	send_bundle(r, 0, mlc_param(r, "deployment_id"));
}

void mlc_h_training_bundle(struct mlc_req *r)
{
	send_bundle(r, 1, mlc_param(r, "training_id"));
}

/* PUT /mltraining/{training_id}/model: the body, as it is, becomes
 * spool/new/model-<id>.pkl (at most MLC_MAX_UPLOAD bytes). */
void mlc_h_training_model(struct mlc_req *r)
{
	const char *id = mlc_param(r, "training_id");
	unsigned long long max = (unsigned long long)mlc_config_long("MLC_MAX_UPLOAD", 512L << 20);
	unsigned long long total = 0;
	struct mlc_err err = { 0, "" };
	char name[96], *buf;
	json_object *o;
	int fd, n;

	if (authorised(r, 1, id) < 0)
		return;
	if (r->content_length < 0) {
		mlc_error(r, 411, "a Content-Length header is required");
		return;
	}
	if ((unsigned long long)r->content_length > max) {
		mlc_error(r, 413, "model of %lld bytes exceeds the limit of %llu bytes "
				 "(MLC_MAX_UPLOAD)", r->content_length, max);
		return;
	}
	snprintf(name, sizeof(name), "model-%s.pkl", id);
	if ((fd = mlc_spool_create(name, &err)) < 0) {
		mlc_reply_err(r, &err);
		return;
	}
	buf = mlc_xmalloc(CHUNK);
	while ((n = FCGX_GetStr(buf, CHUNK, r->fcgx->in)) > 0) {
		total += (unsigned long long)n;
		if (total > (unsigned long long)r->content_length)
			break;
		if (write(fd, buf, (size_t)n) != n) {
			mlc_error_errno(&err, "cannot write the model");
			break;
		}
	}
	free(buf);
	if (!err.code && total != (unsigned long long)r->content_length)
		mlc_error(&err, 400, "the request body ended after %llu of %lld bytes", total,
			    r->content_length);
	if (!err.code && fsync(fd) < 0)
		mlc_error_errno(&err, "cannot write the model");
	close(fd);
	if (err.code || mlc_spool_publish(name, &err) < 0) {
		mlc_spool_discard(name);
		mlc_reply_err(r, &err);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "training_id", json_object_new_string(id));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)total));
	mlc_reply_json(r, 201, o);
}
