/*
 * route-artifacts.c - model artifacts: POST /model/{id}/upload (streaming
 * multipart), GET /model/{id}/files and GET /model/{id}/files/{kind}.
 *
 * The upload is never held in memory: body pieces go from libfcgi through
 * the multipart parser straight into a temporary file of the store while
 * SHA-256 and the format checks (modelcheck.c, csvcheck.c) run over the
 * same bytes.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "csvcheck.h"
#include "log.h"
#include "metrics.h"
#include "modelcheck.h"
#include "multipart.h"
#include "routes.h"
#include "stamp.h"
#include "store.h"
#include "validate.h"

#define CHUNK 65536
#define MAX_STORED_NAME 100

static const char *const file_kinds[] = { "model", "data", "code", "env", NULL };

struct upload {
	struct mlc_blob blob;
	int blob_open;
	int in_file, in_kind, file_parts;
	char filename[MLC_MP_MAX_FILENAME];
	char content_type[MLC_MP_MAX_CTYPE];
	char kind[16];
	size_t kind_len;
	int kind_too_long;
	struct mlc_csv csv;
	struct mlc_modelcheck model;
	struct mlc_err err;
};

static int up_begin(void *ctx, const struct mlc_mp_part *part)
{
	struct upload *u = ctx;

	u->in_file = u->in_kind = 0;
	if (!strcmp(part->name, "file")) {
		if (++u->file_parts > 1) {
			mlc_error(&u->err, 422, "the body has more than one 'file' part");
			return 1;
		}
		if (mlc_blob_open(&u->blob, &u->err) < 0)
			return 1;
		u->blob_open = 1;
		u->in_file = 1;
		snprintf(u->filename, sizeof(u->filename), "%s", part->filename);
		snprintf(u->content_type, sizeof(u->content_type), "%s",
			 part->content_type[0] ? part->content_type : "application/octet-stream");
	} else if (!strcmp(part->name, "file_kind")) {
		u->in_kind = 1;
		u->kind_len = 0;
	}
	return 0;
}

static int up_data(void *ctx, const char *data, size_t len)
{
	struct upload *u = ctx;

	if (u->in_file) {
		mlc_csv_feed(&u->csv, data, len);
		mlc_modelcheck_feed(&u->model, data, len);
		if (mlc_blob_write(&u->blob, data, len) < 0) {
			errno = u->blob.write_errno;
			mlc_error_errno(&u->err, "cannot write the upload");
			return 1;
		}
	} else if (u->in_kind) {
		if (u->kind_len + len >= sizeof(u->kind)) {
			u->kind_too_long = 1;
			return 0;
		}
		memcpy(u->kind + u->kind_len, data, len);
		u->kind_len += len;
		u->kind[u->kind_len] = '\0';
	}
	return 0;
}

static int up_end(void *ctx)
{
	struct upload *u = ctx;

	u->in_file = u->in_kind = 0;
	return 0;
}

/*
 * The client's file name reduced to something safe to put in a path:
 * its last path component, bytes outside [A-Za-z0-9._-] replaced by '_',
 * no leading dots, at most MAX_STORED_NAME bytes, never empty.
 */
static void safe_name(const char *in, char *out, size_t cap)
{
	const char *base = in, *p;
	size_t n = 0;

	for (p = in; *p; p++)
		if (*p == '/' || *p == '\\')
			base = p + 1;
	while (*base == '.')
		base++;
	for (p = base; *p && n + 1 < cap && n < MAX_STORED_NAME; p++)
		out[n++] = (isalnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '_')
			   ? *p : '_';
	out[n] = '\0';
	if (!n)
		snprintf(out, cap, "upload");
}

/* Read the whole body through the multipart parser.  Returns 0, or -1
 * after replying. */
static int stream_body(struct mlc_req *r, struct mlc_mp *mp, struct upload *u,
		       unsigned long long max)
{
	char *buf = mlc_xmalloc(CHUNK);
	unsigned long long total = 0;
	int n, rc = 0;

	/* mlc_body_read applies the idle timeout and the minimum rate: an
	 * upload that stalls or crawls is abandoned (408) instead of holding
	 * the worker for as long as the client likes. */
	while ((n = mlc_body_read(r, buf, CHUNK)) > 0) {
		total += (unsigned long long)n;
		if (total > max) {
			mlc_error(r, 413, "upload exceeds the limit of %llu bytes", max);
			goto out;
		}
		rc = mlc_mp_feed(mp, buf, (size_t)n);
		if (rc)
			break;
	}
	if (n < 0) {
		mlc_reply_body_cut(r);
		goto out;
	}
	if (!rc && r->content_length >= 0 && total < (unsigned long long)r->content_length) {
		mlc_error(r, 400, "the request body ended after %llu of %lld bytes",
				 total, r->content_length);
		goto out;
	}
	if (!rc)
		rc = mlc_mp_finish(mp);
	if (rc == MLC_MP_ABORTED && u->err.code == 422) {
		mlc_reply_422_at(r, "file", "value_error.multipart", "%s", u->err.msg);
		goto out;
	}
	if (rc == MLC_MP_ABORTED) {
		mlc_reply_err(r, &u->err);
		goto out;
	}
	if (rc) {
		json_object *errors = json_object_new_array();

		mlc_validate_error(errors, mlc_mp_error(mp), "value_error.multipart", "body", NULL);
		mlc_reply_422(r, errors);
		goto out;
	}
	free(buf);
	return 0;
out:
	free(buf);
	return -1;
}

/* Check the parts received; reply 422 listing every problem (500 when the
 * model check itself failed) and return -1. */
static int check_upload(struct mlc_req *r, struct upload *u)
{
	json_object *errors;
	const char *const *k;
	int kind_ok = 0, model_bad = 0;

	for (k = file_kinds; *k && !u->kind_too_long; k++)
		kind_ok |= u->kind_len && !strcmp(*k, u->kind);
	if (u->file_parts && u->blob.size && kind_ok && !strcmp(u->kind, "model") &&
	    mlc_modelcheck_finish(&u->model) < 0) {
		if (u->model.internal) {
			mlc_error(r, 500, "%s", mlc_modelcheck_error(&u->model));
			return -1;
		}
		model_bad = 1;
	}
	errors = json_object_new_array();
	if (!u->file_parts)
		mlc_validate_error(errors, "field required", "value_error.missing", "body", "file", NULL);
	if (!u->kind_len && !u->kind_too_long)
		mlc_validate_error(errors, "field required", "value_error.missing",
				   "body", "file_kind", NULL);
	if ((u->kind_len || u->kind_too_long) && !kind_ok)
		mlc_validate_error(errors,
				   "unexpected value; permitted: 'model', 'data', 'code', 'env'",
				   "value_error.const", "body", "file_kind", NULL);
	if (u->file_parts && u->blob.size == 0)
		mlc_validate_error(errors, "the file is empty", "value_error.empty", "body", "file", NULL);
	else if (model_bad)
		mlc_validate_error(errors, mlc_modelcheck_error(&u->model), "value_error.pickle",
				   "body", "file", NULL);
	else if (u->file_parts && kind_ok && !strcmp(u->kind, "data") && mlc_csv_finish(&u->csv) < 0) {
		char msg[320];

		snprintf(msg, sizeof(msg), "training data must be CSV with a header row: %s",
			 mlc_csv_error(&u->csv));
		mlc_validate_error(errors, msg, "value_error.csv", "body", "file", NULL);
	}
	if (!json_object_array_length(errors)) {
		json_object_put(errors);
		return 0;
	}
	mlc_reply_422(r, errors);
	return -1;
}

static int next_version(void *ctx, char **cols, const unsigned long *lens, unsigned n)
{
	*(long long *)ctx = cols[0] ? atoll(cols[0]) : 1;
	return 1;
}

#define FILE_COLS "fileid, modelid, filekind, version, filename, contenttype, size, sha256, " \
	"created_at"

static json_object *file_from_row(char **cols)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "modelid", json_object_new_string(cols[1]));
	json_object_object_add(o, "filekind", json_object_new_string(cols[2]));
	json_object_object_add(o, "filename", json_object_new_string(cols[4]));
	json_object_object_add(o, "contenttype", json_object_new_string(cols[5]));
	json_object_object_add(o, "fileid", json_object_new_int64(atoll(cols[0])));
	json_object_object_add(o, "version", json_object_new_int64(atoll(cols[3])));
	json_object_object_add(o, "size", json_object_new_int64(atoll(cols[6])));
	json_object_object_add(o, "sha256", json_object_new_string(cols[7]));
	json_object_object_add(o, "created_at", mlc_iso_time(cols[8]));
	return o;
}

#define MAX_IDEMPOTENCY_KEY 255

/* The Idempotency-Key header, when present: 1 to 255 visible ASCII
 * characters.  Returns 0 (key NULL without the header), or -1 after
 * replying 422. */
static int idempotency_key_or_422(struct mlc_req *r, const char **key)
{
	const char *k = FCGX_GetParam("HTTP_IDEMPOTENCY_KEY", r->fcgx->envp);
	size_t n = 0;

	*key = NULL;
	if (!k)
		return 0;
	while (k[n] && n <= MAX_IDEMPOTENCY_KEY && k[n] > 0x20 && k[n] < 0x7f)
		n++;
	if (n && n <= MAX_IDEMPOTENCY_KEY && !k[n]) {
		*key = k;
		return 0;
	}
	{
		json_object *errors = json_object_new_array();

		mlc_validate_error(errors, "an Idempotency-Key is 1 to 255 visible ASCII characters "
				   "(no spaces)", "value_error.idempotency_key", "header",
				   "idempotency-key", NULL);
		mlc_reply_422(r, errors);
	}
	return -1;
}

struct stored {
	json_object *file;	/* the row as the API shows it */
	char kind[16];
	char sha256[65];
};

static int stored_row(void *ctx, char **cols, const unsigned long *lens, unsigned n)
{
	struct stored *s = ctx;

	s->file = file_from_row(cols);
	snprintf(s->kind, sizeof(s->kind), "%s", cols[2]);
	snprintf(s->sha256, sizeof(s->sha256), "%s", cols[7]);
	return 1;
}

#ifdef MLC_TEST_HOOKS
/*
 * Test builds only (see mlc_test_hook): when the file
 * $MLC_VAR/test-lost-commit exists, the next upload's COMMIT is "lost" -
 * its connection is closed right after COMMIT ("landed": the row is in)
 * or instead of it ("lost": the server rolls back) and the worker sees a
 * lost connection either way.  Returns 'l', 'n' or 0.
 */
static int test_lost_commit(void)
{
	char c = 0;

	if (!mlc_test_hook("lost-commit", NULL, &c))
		return 0;
	return c == 'l' ? 'l' : 'n';
}
#endif

static int commit_upload(struct mlc_req *r, struct mlc_err *err)
{
#ifdef MLC_TEST_HOOKS
	int hook = test_lost_commit();

	if (hook) {
		if (hook == 'l' && mlc_db_commit(r->db, err) < 0)
			return -1;
		mlc_db_disconnect(r->db);
		mlc_log("warn", NULL, "test hook: the upload's COMMIT is lost (%s)",
			hook == 'l' ? "it landed" : "it did not land");
		mlc_error(err, 503, "database unavailable: try again shortly");
		return -1;
	}
#endif
	return mlc_db_commit(r->db, err);
}

/* After a lost COMMIT: whether the artifact row landed. */
static int upload_landed(struct mlc_req *r, const char *id, const char *kind, long long version,
			 const char *rel, const char *sha)
{
	struct mlc_param p[] = { MLC_PSTR(id), MLC_PSTR(kind), MLC_PLONG(version), MLC_PSTR(rel),
				 MLC_PSTR(sha) };

	return mlc_model_row_landed(r, id, "SELECT 1 FROM artifacts WHERE modelid = ? AND "
				    "filekind = ? AND version = ? AND path = ? AND sha256 = ?", p, 5);
}

/*
 * The artifact row an Idempotency-Key already names for the model: 1 with
 * *out the row to answer with again (*replayed set) when it is the same
 * kind and bytes, -1 with a 422 in err when it is another file, 0 when the
 * key names no row yet; -1 with err when the database fails.
 */
static int stored_by_key(struct mlc_req *r, const struct upload *u, const char *id,
			 const char *idem, const char *sha, int *replayed, json_object **out,
			 struct mlc_err *err)
{
	struct mlc_param p[] = { MLC_PSTR(id), MLC_PSTR(idem) };
	struct stored prev = { NULL, "", "" };

	if (mlc_db_exec(r->db, "SELECT " FILE_COLS " FROM artifacts WHERE modelid = ? AND "
			"idempotency_key = ?", p, 2, stored_row, &prev, err) < 0)
		return -1;
	if (!prev.file)
		return 0;
	if (!strcmp(prev.kind, u->kind) && !strcmp(prev.sha256, sha)) {
		*replayed = 1;
		*out = prev.file;
		return 1;
	}
	json_object_put(prev.file);
	mlc_error(err, 422, "the Idempotency-Key '%s' was used for another file of this model "
		  "(%s, sha256 %s); send a new key with a different file", idem, prev.kind,
		  prev.sha256);
	return -1;
}

/*
 * The placed file at rel that no row names becomes the blob's temporary
 * file again (*again set: the upload can be stored anew, and
 * mlc_blob_discard removes it when it is not); if it cannot be, it is
 * removed.
 */
static void take_back(struct upload *u, const char *rel, int *again)
{
	if (mlc_blob_unplace(&u->blob, rel) == 0)
		*again = 1;
	else
		mlc_store_unlink(rel);
}

/*
 * Give the blob its final name and record it, as version N+1 of its kind.
 * The bytes are fsynced first, before any lock; then the model row is
 * locked so that concurrent uploads to one model take distinct versions
 * (and one Idempotency-Key one row).  With a key already stored for the
 * model, the stored row is the answer (*replayed set) when it is the same
 * kind and bytes, a 422 otherwise.  Returns the file object or NULL with
 * err (err->code 422 for a key used for another file); *again set when
 * the bytes are still this upload's to store again (mlc_db_retry says
 * whether err calls for it).
 */
static json_object *store_once(struct mlc_req *r, struct upload *u, const char *id,
			       const char *idem, char sha[65], int *replayed, int *again,
			       struct mlc_err *err)
{
	char name[MAX_STORED_NAME + 1], rel[512];
	struct mlc_param key[] = { MLC_PSTR(id), MLC_PSTR(u->kind) };
	long long version = 1, found;
	json_object *out = NULL;
	int placed = 0, landed, rc;

	*replayed = 0;
	*again = 0;
	safe_name(u->filename, name, sizeof(name));
	if (mlc_db_begin(r->db, err) < 0)
		goto fail;
	found = mlc_db_exec(r->db, "SELECT 1 FROM models WHERE modelid = ? FOR UPDATE",
			    key, 1, NULL, NULL, err);
	if (found < 0)
		goto fail;
	if (!found) {
		mlc_error(err, 404, "model '%s' not found", id);
		goto fail;
	}
	if (idem) {
		rc = stored_by_key(r, u, id, idem, sha, replayed, &out, err);
		if (rc < 0)
			goto fail;
		if (rc) {
			mlc_db_rollback(r->db);
			return out;
		}
	}
	if (mlc_db_exec(r->db, "SELECT MAX(version) + 1 FROM artifacts WHERE modelid = ? "
			"AND filekind = ?", key, 2, next_version, &version, err) < 0)
		goto fail;
	snprintf(rel, sizeof(rel), "%s/%s/v%lld-%s", id, u->kind, version, name);
	while ((rc = mlc_blob_place(&u->blob, rel, err)) == 1) {
		/* Taken: by a concurrent upload of the same name on another
		 * API host (whose row, if it commits, takes this version, and
		 * ours then fails on the unique version), or by a file no row
		 * names.  Either way this upload's bytes go beside it. */
		char uuid[37];

		mlc_uuid4(uuid);
		snprintf(rel, sizeof(rel), "%s/%s/v%lld-%.8s-%s", id, u->kind, version, uuid, name);
	}
	if (rc < 0)
		goto fail;
	placed = 1;
	{
		struct mlc_param p[] = { MLC_PSTR(id), MLC_PSTR(u->kind), MLC_PLONG(version),
					 MLC_PSTR(name), MLC_PSTR(u->content_type), MLC_PSTR(rel),
					 MLC_PLONG((long long)u->blob.size), MLC_PSTR(sha),
					 idem ? MLC_PSTR(idem) : MLC_PNULL };

		if (mlc_db_exec(r->db, "INSERT INTO artifacts (modelid, filekind, version, filename, "
				"contenttype, path, size, sha256, idempotency_key, created_at) "
				"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6))", p, 9, NULL, NULL,
				err) < 0) {
			/* A unique key refused the row: a concurrent upload
			 * through another host's node (whose lock on the model
			 * row is not ours) took this version or this key first.
			 * Nothing was written: a conflict, as when the cluster
			 * rolls back the later COMMIT. */
			if (err->code == 409)
				mlc_error(err, 503, MLC_DB_CONFLICT_MSG);
			goto fail;
		}
	}
	if (commit_upload(r, err) < 0) {
		/* The commit may have landed although its answer was lost: the
		 * file goes only when the row is certainly not there. */
		landed = mlc_db_err_conflict(err) ? 0 /* rolled back whole */
			 : upload_landed(r, id, u->kind, version, rel, sha);
		if (landed == 0)
			take_back(u, rel, again);
		if (landed < 0)
			mlc_log("error", NULL, "upload: the commit of %s was lost and the database "
				"cannot say whether it landed; the file stays", rel);
		if (landed <= 0)
			return NULL;
		mlc_log("warn", NULL, "upload: the answer to the commit of %s was lost; it landed",
			rel);
	}
	{
		struct mlc_param p[] = { MLC_PSTR(id), MLC_PSTR(u->kind), MLC_PLONG(version) };

		if (mlc_load_row(r, "SELECT " FILE_COLS " FROM artifacts WHERE modelid = ? AND "
				 "filekind = ? AND version = ?", p, 3, file_from_row, &out, err) < 0)
			return NULL;
	}
	return out;
fail:
	mlc_db_rollback(r->db);
	if (placed)
		take_back(u, rel, again);
	else
		*again = 1;
	return NULL;
}

/* How many times an upload is stored before a conflict is answered, and
 * the longest pause before another attempt (milliseconds, times the
 * attempt: hosts that collided once do not collide again in step). */
#define STORE_ATTEMPTS 8
#define STORE_PAUSE_MS 20

/*
 * store_once, again after a conflict.  On one database server the model
 * row's lock orders the uploads of one model: each takes the next version,
 * and the later of two with one Idempotency-Key finds the earlier's row and
 * replays it.  Several API hosts on a Galera cluster (docs/SCALING.md)
 * lock the row each on its own node, so two may number the same version
 * or store the same key at once; the cluster lets one COMMIT through and
 * rolls the other back (a certification conflict), or the node's unique
 * key refuses its row.  Nothing of the loser was written and its bytes
 * are still here: it is stored once more, in a new transaction that waits
 * for the winner's write (wsrep_sync_wait) - and so takes the next
 * version, or finds the key and replays - as a single server would have
 * done.  Only a conflict that outlasts STORE_ATTEMPTS is answered 503.
 */
static json_object *store_upload(struct mlc_req *r, struct upload *u, const char *id,
				 const char *idem, int *replayed, struct mlc_err *err)
{
	json_object *out = NULL;
	int attempt, again = 0;
	char sha[65];

	*replayed = 0;
	if (mlc_blob_sync(&u->blob, sha, err) < 0)
		return NULL;
	for (attempt = 1;; attempt++) {
		out = store_once(r, u, id, idem, sha, replayed, &again, err);
		if (out || !again ||
		    !mlc_db_retry(r->db, attempt, STORE_ATTEMPTS, STORE_PAUSE_MS, err, r->request_id,
				  "upload to model %s", id))
			return out;
	}
}

static void reply_key_reused(struct mlc_req *r, const char *msg)
{
	json_object *errors = json_object_new_array();

	mlc_validate_error(errors, msg, "value_error.idempotency_key.reused", "header",
			   "idempotency-key", NULL);
	mlc_reply_422(r, errors);
}

void mlc_h_model_upload(struct mlc_req *r)
{
	const char *id = mlc_param(r, "model_id");
	unsigned long long max = (unsigned long long)mlc_config_long("MLC_MAX_UPLOAD", 536870912L);
	static const struct mlc_mp_callbacks cb = { up_begin, up_data, up_end };
	char boundary[MLC_MP_MAX_BOUNDARY + 1], msg[256];
	struct mlc_err err = { 0, "" };
	struct upload *u;
	struct mlc_mp *mp;
	json_object *file;
	const char *idem;
	int replayed = 0;

	if (mlc_model_owned_or_reply(r, id, "upload to") < 0)
		return;
	if (r->content_length >= 0 && (unsigned long long)r->content_length > max) {
		mlc_error(r, 413, "upload of %lld bytes exceeds the limit of %llu bytes",
				 r->content_length, max);
		return;
	}
	if (mlc_mp_boundary(r->content_type, boundary,
			    sizeof(boundary), msg, sizeof(msg)) < 0) {
		json_object *errors = json_object_new_array();

		mlc_validate_error(errors, msg, "value_error.content_type", "header",
				   "content-type", NULL);
		mlc_reply_422(r, errors);
		return;
	}
	if (idempotency_key_or_422(r, &idem) < 0)
		return;
	u = mlc_xcalloc(1, sizeof(*u));
	u->blob.fd = -1;
	mlc_csv_init(&u->csv);
	mlc_modelcheck_init(&u->model);
	mp = mlc_mp_new(boundary, &cb, u);
	if (stream_body(r, mp, u, max) == 0 && check_upload(r, u) == 0) {
		file = store_upload(r, u, id, idem, &replayed, &err);
		if (file && replayed)
			mlc_reply_header(r, "Idempotent-Replayed: true");
		if (file && !replayed)
			mlc_metrics_upload(0, json_object_get_string(json_object_object_get(file, "filekind")),
					   json_object_get_int64(json_object_object_get(file, "size")));
		if (file)
			mlc_reply_json(r, 201, file);
		else if (err.code == 422)
			reply_key_reused(r, err.msg);
		else
			mlc_reply_err(r, &err);
	}
	mlc_metrics_upload(r->body_read, NULL, 0);
	mlc_mp_free(mp);
	mlc_blob_discard(&u->blob);
	mlc_modelcheck_free(&u->model);
	free(u);
}

void mlc_h_model_files(struct mlc_req *r)
{
	const char *id = mlc_param(r, "model_id");
	struct mlc_param p[] = { MLC_PSTR(id) };
	long skip, limit;

	if (mlc_paging_or_422(r, MLC_NO_LIMIT, &skip, &limit) < 0 ||
	    mlc_model_exists_or_404(r, id) < 0)
		return;
	mlc_reply_page(r, "SELECT " FILE_COLS " FROM artifacts WHERE modelid = ? "
		       "ORDER BY filekind, version LIMIT ? OFFSET ?", p, 1, skip, limit, file_from_row);
}

struct download {
	char path[512];
	char filename[256];
	char sha256[65];
	int found;
};

static int download_row(void *ctx, char **cols, const unsigned long *lens, unsigned n)
{
	struct download *d = ctx;

	snprintf(d->path, sizeof(d->path), "%s", cols[0]);
	snprintf(d->filename, sizeof(d->filename), "%s", cols[1]);
	snprintf(d->sha256, sizeof(d->sha256), "%s", cols[2]);
	d->found = 1;
	return 1;
}

/*
 * GET /model/{id}/files/{kind}[?version=N]: the worker only finds the
 * file; nginx sends it (X-Accel-Redirect to an internal location), so a
 * large download never occupies a worker.
 */
void mlc_h_model_download(struct mlc_req *r)
{
	const char *id = mlc_param(r, "model_id"), *kind = mlc_param(r, "kind");
	struct mlc_err err = { 0, "" };
	struct download d = { .found = 0 };
	const char *const *k;
	long version;
	long long rc;

	for (k = file_kinds; *k && strcmp(*k, kind); k++)
		;
	if (!*k) {
		json_object *errors = json_object_new_array();

		mlc_validate_error(errors, "unexpected value; permitted: 'model', 'data', 'code', 'env'",
				   "value_error.const", "path", "kind", NULL);
		mlc_reply_422(r, errors);
		return;
	}
	/* The model file is the shared registry's; its data, code and env
	 * files are its owner's. */
	if (mlc_query_long_or_422(r, "version", 0, 1, 1L << 31, &version) < 0 ||
	    (!strcmp(kind, "model") ? mlc_model_exists_or_404(r, id)
				    : mlc_model_owned_or_reply(r, id, "download the data, code "
								 "and env files of")) < 0)
		return;
	{
		struct mlc_param p[] = { MLC_PSTR(id), MLC_PSTR(kind), MLC_PLONG(version),
					 MLC_PLONG(version) };

		rc = mlc_db_exec(r->db, "SELECT path, filename, sha256 FROM artifacts "
				 "WHERE modelid = ? AND filekind = ? AND (? = 0 OR version = ?) "
				 "ORDER BY version DESC LIMIT 1", p, 4, download_row, &d, &err);
	}
	if (rc < 0) {
		mlc_reply_err(r, &err);
		return;
	}
	if (!d.found) {
		if (version)
			mlc_error(r, 404, "model '%s' has no %s file version %ld", id, kind, version);
		else
			mlc_error(r, 404, "model '%s' has no %s file; upload one with "
					 "POST /model/%s/upload", id, kind, id);
		return;
	}
	mlc_reply_accel(r, d.path, d.filename, d.sha256);
}
