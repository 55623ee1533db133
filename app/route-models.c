/*
 * route-models.c - the model registry: /model/add, /model/all, /model/getkind,
 * /model/search and /model/{model_id} (GET, PATCH, DELETE).
 *
 * A model is one row of `models`; its list-valued metadata is stored as the
 * validated JSON text, and its tags once more in `model_tags` so that tag
 * search is an index lookup.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routes.h"
#include "buf.h"
#include "jsonbuf.h"
#include "jsonutil.h"
#include "log.h"
#include "rowcache.h"
#include "stamp.h"
#include "store.h"
#include "validate.h"

/* The documented limit of GET /model/search.  Each tag is one statement
 * parameter, and a page binds its limit and offset after them: the
 * statement layer must hold them all, or a long tag list would be a
 * failed request (and, before this was checked, a dead worker). */
#define MAX_SEARCH_TAGS 64
_Static_assert(MAX_SEARCH_TAGS + MLC_PAGE_PARAMS <= MLC_DB_MAX_PARAMS,
	       "a search with MAX_SEARCH_TAGS tags must fit the statement layer's parameters");

/* ---- schema (MLModelCreate) ---- */

static const struct mlc_field hyperparameter_fields[] = {
	{ .name = "parameter", .type = MLC_V_STR, .flags = MLC_F_NULLABLE, .max_len = 255 },
	{ .name = "value", .type = MLC_V_NUM, .flags = MLC_F_NULLABLE },
	{ .name = NULL }
};

static const struct mlc_field performance_fields[] = {
	{ .name = "metric", .type = MLC_V_STR, .flags = MLC_F_NULLABLE, .max_len = 255 },
	{ .name = "order", .type = MLC_V_INT, .flags = MLC_F_NULLABLE },
	{ .name = "threshold", .type = MLC_V_NUM, .flags = MLC_F_NULLABLE },
	{ .name = NULL }
};

static const struct mlc_field resource_fields[] = {
	{ .name = "resource_name", .type = MLC_V_STR, .flags = MLC_F_NULLABLE, .max_len = 255 },
	{ .name = "value", .type = MLC_V_NUM, .flags = MLC_F_NULLABLE },
	{ .name = "deploy", .type = MLC_V_STR, .flags = MLC_F_NULLABLE, .max_len = 255 },
	{ .name = NULL }
};

/* type and kind are stored as sent: "cont" / "cat" and 0 (an input) / 1
 * (the target) are what predict and drift know, and they decide about
 * any other value when they use it. */
static const struct mlc_field feature_fields[] = {
	{ .name = "feature_name", .type = MLC_V_STR, .flags = MLC_F_NULLABLE, .max_len = 255 },
	{ .name = "type", .type = MLC_V_STR, .flags = MLC_F_NULLABLE, .max_len = 255 },
	{ .name = "kind", .type = MLC_V_INT, .flags = MLC_F_NULLABLE },
	{ .name = "units", .type = MLC_V_INT, .flags = MLC_F_NULLABLE },
	{ .name = NULL }
};

static const struct mlc_field inference_fields[] = {
	{ .name = "type", .type = MLC_V_STR, .flags = MLC_F_NULLABLE, .max_len = 255 },
	{ .name = "value", .type = MLC_V_STR, .flags = MLC_F_NULLABLE, .max_len = 4096 },
	{ .name = NULL }
};

static const struct mlc_field drift_fields[] = {
	{ .name = "is_true", .type = MLC_V_INT, .flags = MLC_F_NULLABLE,
	  .has_min = 1, .min = 0, .has_max = 1, .max = 1 },
	{ .name = "method", .type = MLC_V_INT, .flags = MLC_F_NULLABLE,
	  .has_min = 1, .min = 0, .has_max = 1, .max = 2 },
	{ .name = NULL }
};

/* model_tags.tag is VARCHAR(255): characters, as UTF-8 counts them.  The
 * empty tag is a tag like any other. */
/* Tags a model may have. */
#define MAX_MODEL_TAGS 64

static int tag_fits(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n <= 255;
}

#define LIST_OF(n, f) { .name = n, .type = MLC_V_LIST, .flags = MLC_F_NULLABLE, \
			.item = MLC_V_OBJ, .fields = f, .max_len = 1000 }

static const struct mlc_field model_schema[] = {
	{ .name = "modelname", .type = MLC_V_STR, .flags = MLC_F_REQUIRED, .max_len = 255 },
	{ .name = "modelkind", .type = MLC_V_STR, .flags = MLC_F_REQUIRED, .max_len = 64 },
	LIST_OF("hyperparameter", hyperparameter_fields),
	LIST_OF("modelperformance", performance_fields),
	LIST_OF("trainingresource", resource_fields),
	LIST_OF("runresource", resource_fields),
	LIST_OF("featurelist", feature_fields),
	LIST_OF("inference", inference_fields),
	{ .name = "modeltags", .type = MLC_V_LIST, .flags = MLC_F_NULLABLE,
	  .item = MLC_V_STR, .max_len = MAX_MODEL_TAGS, .check = tag_fits,
	  .check_msg = "a tag has at most 255 characters" },
	{ .name = "drift_detection", .type = MLC_V_LIST,
	  .flags = MLC_F_REQUIRED | MLC_F_NULLABLE, .item = MLC_V_OBJ,
	  .fields = drift_fields, .max_len = 100 },
	{ .name = NULL }
};

/* Columns holding JSON text, in schema order after modelname, modelkind. */
static const char *const json_columns[] = {
	"hyperparameter", "modelperformance", "trainingresource", "runresource",
	"featurelist", "inference", "modeltags", "drift_detection",
};
#define NJSON (sizeof(json_columns) / sizeof(json_columns[0]))

#define MODEL_COLS "modelid, modelname, modelkind, hyperparameter, modelperformance, " \
	"trainingresource, runresource, featurelist, inference, modeltags, " \
	"drift_detection, created_at, updated_at"

/* ---- helpers ---- */

/* One row of MODEL_COLS as the API shows a model: the list-valued
 * metadata is the stored JSON text, echoed (jsonbuf.h). */
static void model_text(struct mlc_jbuf *b, char **cols)
{
	size_t i;

	mlc_jbuf_lit(b, "{\"modelid\":");
	mlc_jbuf_str(b, cols[0]);
	mlc_jbuf_lit(b, ",\"modelname\":");
	mlc_jbuf_str(b, cols[1]);
	mlc_jbuf_lit(b, ",\"modelkind\":");
	mlc_jbuf_str(b, cols[2]);
	for (i = 0; i < NJSON; i++) {
		mlc_jbuf_lit(b, ",\"");
		mlc_jbuf_put(b, json_columns[i], strlen(json_columns[i]));
		mlc_jbuf_lit(b, "\":");
		mlc_jbuf_raw(b, cols[3 + i]);
	}
	mlc_jbuf_lit(b, ",\"created_at\":");
	mlc_jbuf_time(b, cols[3 + NJSON]);
	mlc_jbuf_lit(b, ",\"updated_at\":");
	mlc_jbuf_time(b, cols[4 + NJSON]);
	mlc_jbuf_lit(b, "}");
}

/* The model's tags (an array of strings, at most MAX_MODEL_TAGS by
 * model_schema, or null), each once; replace drops its old rows first (a
 * new model has none, and deleting nothing would still take gap locks that
 * make concurrent adds deadlock).  Rows go in TAG_ROWS at a time, one
 * statement per TAG_ROWS tags and one for the rest, so that at most
 * TAG_ROWS shapes of it are prepared and kept per worker. */
#define TAG_ROWS 8
static int store_tags(struct mlc_req *r, const char *id, unsigned long long seq,
		      json_object *tags, int replace, struct mlc_err *err)
{
	struct mlc_param del[] = { MLC_PSTR(id) };
	struct mlc_param p[3 * TAG_ROWS];
	struct mlc_buf sql = MLC_BUF_INIT(128 + 12 * TAG_ROWS);
	size_t i, j, k = 0, n = tags ? json_object_array_length(tags) : 0;
	long long rc = 0;

	if (replace && mlc_db_exec(r->db, "DELETE FROM model_tags WHERE modelid = ?", del, 1,
				   NULL, NULL, err) < 0)
		return -1;
	for (i = 0; i < n && rc >= 0; i++) {
		const char *t = json_object_get_string(json_object_array_get_idx(tags, i));

		for (j = 0; j < i; j++)
			if (!strcmp(t, json_object_get_string(json_object_array_get_idx(tags, j))))
				break;
		if (j == i) {
			p[3 * k] = MLC_PSTR(t);
			p[3 * k + 1] = MLC_PLONG((long long)seq);
			p[3 * k + 2] = MLC_PSTR(id);
			k++;
		}
		if (k == TAG_ROWS || (k && i == n - 1)) {
			mlc_buf_reset(&sql);
			mlc_buf_puts(&sql, "INSERT INTO model_tags (tag, model_seq, modelid) VALUES ");
			for (j = 0; j < k; j++)
				mlc_buf_puts(&sql, j ? ", (?, ?, ?)" : "(?, ?, ?)");
			rc = mlc_db_exec(r->db, mlc_buf_str(&sql), p, 3 * (unsigned)k, NULL, NULL,
					 err);
			k = 0;
		}
	}
	mlc_buf_release(&sql);
	return rc < 0 ? -1 : 0;
}

/* The read routes' columns: MODEL_COLS, then what the cache compares. */
#define READ_COLS MODEL_COLS ", seq, " MLC_ROW_VERSION
#define SEQ_COL 13
#define VERSION_COL 14
#define MODEL_BY_ID "SELECT " READ_COLS " FROM models WHERE modelid = ?"

/* ---- models served from the worker's cache (rowcache.h) ----
 *
 * A read first asks the database for the (modelid, seq, row_version) of
 * the rows it answers with - a primary key read, or an index-only page
 * (sql/018) - and takes each model's text from the cache when it has that
 * seq and version; only the models it does not have are read in full.
 */

/* Pages up to this many rows are assembled in memory from their keys;
 * longer ones (and "every row") stream as they are read. */
#define KEYED_PAGE_MAX 1000
/* A page missing more models than this reads the whole page in full
 * (one statement) rather than each missing model by its id. */
#define FETCH_ONE_BY_ONE 8

struct model_key {
	char id[37];
	unsigned long long seq, version;
};

static unsigned long long col_ull(const char *s)
{
	return s ? strtoull(s, NULL, 10) : 0;
}

/* The text of a full row (READ_COLS), kept in the cache. */
static void write_and_keep(struct mlc_jbuf *out, char **cols)
{
	size_t at = out->len;

	model_text(out, cols);
	mlc_rowcache_put(cols[0], col_ull(cols[SEQ_COL]), col_ull(cols[VERSION_COL]),
			 out->s + at, out->len - at);
}

static int full_row(void *ctx, char **cols, const unsigned long *lens, unsigned n)
{
	struct mlc_jbuf *out = ctx;

	if (out->len)
		mlc_jbuf_lit(out, ",");
	write_and_keep(out, cols);
	return 0;
}

/* The row an INSERT ... RETURNING READ_COLS wrote: its text, and its seq
 * for the tags. */
struct new_row {
	struct mlc_jbuf *out;
	unsigned long long seq;
};

static int new_row(void *ctx, char **cols, const unsigned long *lens, unsigned n)
{
	struct new_row *w = ctx;

	w->seq = col_ull(cols[SEQ_COL]);
	return full_row(w->out, cols, lens, n);
}

/* Buffers the read routes reuse from request to request. */
static struct mlc_jbuf body, one;

/* Append model key's text to out (comma first unless out is empty); 0
 * when the model has gone meanwhile, -1 with err. */
static int append_model(struct mlc_req *r, const struct model_key *key, struct mlc_jbuf *out,
			struct mlc_err *err)
{
	struct mlc_param p[] = { MLC_PSTR(key->id) };
	const char *text;
	size_t len;
	long long n;

	if ((text = mlc_rowcache_get(key->id, key->seq, key->version, &len))) {
		if (out->len)
			mlc_jbuf_lit(out, ",");
		mlc_jbuf_put(out, text, len);
		return 1;
	}
	mlc_jbuf_reset(&one);
	n = mlc_db_exec(r->db, MODEL_BY_ID, p, 1, full_row, &one, err);
	if (n > 0) {
		if (out->len)
			mlc_jbuf_lit(out, ",");
		mlc_jbuf_put(out, one.s, one.len);
	}
	return n < 0 ? -1 : n > 0;
}

/* Reply with model id read in full (after a write: the cache cannot have
 * it), keeping its text. */
static void reply_model_fresh(struct mlc_req *r, int status, const char *id)
{
	struct mlc_param p[] = { MLC_PSTR(id) };
	struct mlc_err err = { 0, "" };
	long long n;

	mlc_jbuf_reset(&body);
	if ((n = mlc_db_exec(r->db, MODEL_BY_ID, p, 1, full_row, &body, &err)) < 0)
		mlc_reply_err(r, &err);
	else if (!n)
		mlc_error(r, 404, "model '%s' not found", id);
	else
		mlc_reply_text(r, status, "application/json", body.s, body.len);
}

static int key_of_id(void *ctx, char **cols, const unsigned long *lens, unsigned n)
{
	struct model_key *k = ctx;

	k->seq = col_ull(cols[0]);
	k->version = col_ull(cols[1]);
	return 1;
}

static void reply_model_or_404(struct mlc_req *r, int status, const char *id)
{
	struct model_key key = { "", 0, 0 };
	struct mlc_param p[] = { MLC_PSTR(id) };
	struct mlc_err err = { 0, "" };
	long long n;

	if (!mlc_rowcache_on() || strlen(id) >= sizeof(key.id)) {
		mlc_reply_row_text_or_404(r, status, MODEL_BY_ID, id, model_text, "model");
		return;
	}
	snprintf(key.id, sizeof(key.id), "%s", id);
	mlc_jbuf_reset(&body);
	if ((n = mlc_db_exec(r->db, "SELECT seq, " MLC_ROW_VERSION " FROM models WHERE modelid = ?", p, 1,
			     key_of_id, &key, &err)) < 0 ||
	    (n > 0 && (n = append_model(r, &key, &body, &err)) < 0))
		mlc_reply_err(r, &err);
	else if (!n)
		mlc_error(r, 404, "model '%s' not found", id);
	else
		mlc_reply_text(r, status, "application/json", body.s, body.len);
}

struct key_list {
	struct model_key *keys;
	size_t n, cap;
};

static int page_key(void *ctx, char **cols, const unsigned long *lens, unsigned n)
{
	struct key_list *l = ctx;
	struct model_key *k;

	if (l->n == l->cap)
		return 1;
	k = &l->keys[l->n++];
	snprintf(k->id, sizeof(k->id), "%s", cols[0]);
	k->seq = col_ull(cols[1]);
	k->version = col_ull(cols[2]);
	return 0;
}

/*
 * One page of models.  keys_sql and full_sql select the same rows in the
 * same order ("... LIMIT ? OFFSET ?"), the first their modelid, seq and
 * row_version, the second READ_COLS; p holds their np other parameters.
 * The keys are read with one row more than the page, which says whether a
 * next page exists (the Link header of mlc_reply_page).
 */
static void reply_models(struct mlc_req *r, const char *keys_sql, const char *full_sql,
			 const struct mlc_param *p, unsigned np, long skip, long limit)
{
	struct mlc_param pp[MLC_DB_MAX_PARAMS];
	struct key_list l = { NULL, 0, 0 };
	struct mlc_err err = { 0, "" };
	size_t i, missing = 0;
	int more;

	if (!mlc_rowcache_on() || limit <= 0 || limit > KEYED_PAGE_MAX ||
	    np + MLC_PAGE_PARAMS > MLC_DB_MAX_PARAMS) {
		mlc_reply_page_text(r, full_sql, p, np, skip, limit, model_text);
		return;
	}
	if (np)
		memcpy(pp, p, np * sizeof(*pp));
	pp[np] = MLC_PLONG((long long)limit + 1);
	pp[np + 1] = MLC_PLONG(skip);
	l.cap = (size_t)limit + 1;
	l.keys = mlc_xcalloc(l.cap, sizeof(*l.keys));
	if (mlc_db_exec(r->db, keys_sql, pp, np + 2, page_key, &l, &err) < 0)
		goto fail;
	more = l.n > (size_t)limit;
	if (more)
		l.n--;
	for (i = 0; i < l.n; i++) {
		size_t len;

		missing += !mlc_rowcache_get(l.keys[i].id, l.keys[i].seq, l.keys[i].version, &len);
	}
	mlc_jbuf_reset(&body);
	if (missing > FETCH_ONE_BY_ONE) {
		/* Mostly unknown (a page read for the first time): the page in
		 * full, which fills the cache. */
		pp[np] = MLC_PLONG(limit);
		if (mlc_db_exec(r->db, full_sql, pp, np + 2, full_row, &body, &err) < 0)
			goto fail;
	} else {
		for (i = 0; i < l.n; i++)
			if (append_model(r, &l.keys[i], &body, &err) < 0)
				goto fail;
	}
	free(l.keys);
	mlc_reply_page_body(r, skip, limit, more, body.s ? body.s : "", body.len);
	return;
fail:
	free(l.keys);
	mlc_reply_err(r, &err);
}

static int exec_with_id(struct mlc_req *r, const char *id, const char *sql,
			struct mlc_err *err)
{
	struct mlc_param p[] = { MLC_PSTR(id) };

	return (int)mlc_db_exec(r->db, sql, p, 1, NULL, NULL, err);
}

int mlc_model_exists_or_404(struct mlc_req *r, const char *id)
{
	struct mlc_err err = { 0, "" };
	long long n = exec_with_id(r, id, "SELECT 1 FROM models WHERE modelid = ?", &err);

	if (n < 0)
		mlc_reply_err(r, &err);
	else if (!n)
		mlc_error(r, 404, "model '%s' not found", id);
	return n > 0 ? 0 : -1;
}

/*
 * After a COMMIT that failed (typically the connection was lost while it
 * ran): whether the row it wrote landed.  On a new connection the model
 * row is locked first - that waits until the server has finished the old
 * transaction, committed or rolled back - then sql (a SELECT with params
 * p) looks for the row.  1 it is there, 0 it is not, -1 cannot tell.
 */
int mlc_model_row_landed(struct mlc_req *r, const char *modelid, const char *sql,
			 const struct mlc_param *p, unsigned np)
{
	struct mlc_param key[] = { MLC_PSTR(modelid) };
	struct mlc_err err = { 0, "" };
	long long n;

	mlc_db_rollback(r->db);
	if (mlc_db_begin(r->db, &err) < 0)
		return -1;
	n = mlc_db_exec(r->db, "SELECT 1 FROM models WHERE modelid = ? FOR UPDATE", key, 1,
			NULL, NULL, &err);
	if (n >= 0)
		n = mlc_db_exec(r->db, sql, p, np, NULL, NULL, &err);
	mlc_db_rollback(r->db);
	return n < 0 ? -1 : n > 0;
}

static int owner_col(void *ctx, char **cols, const unsigned long *lens, unsigned n)
{
	snprintf((char *)ctx, 256, "%s", cols[0]);
	return 1;
}

int mlc_model_owned_or_reply(struct mlc_req *r, const char *id, const char *what)
{
	struct mlc_param p[] = { MLC_PSTR(id) };
	struct mlc_err err = { 0, "" };
	char owner[256] = "";
	long long n = mlc_db_exec(r->db, "SELECT ownerid FROM models WHERE modelid = ?", p, 1,
				  owner_col, owner, &err);

	if (n < 0)
		mlc_reply_err(r, &err);
	else if (!n)
		mlc_error(r, 404, "model '%s' not found", id);
	else if (!mlc_owns(r, owner))
		mlc_error(r, 403, "model '%s' belongs to another owner: only its owner or "
				 "an admin may %s it", id, what);
	else
		return 0;
	return -1;
}

/* ---- handlers ---- */

void mlc_h_model_add(struct mlc_req *r)
{
	struct mlc_err err = { 0, "" };
	struct mlc_param p[4 + NJSON];
	char id[37];
	json_object *m = mlc_body_or_422(r, model_schema, 0), *tags;
	int with_tags;
	long long n = -1;
	size_t i;
	int attempt;

	if (!m)
		return;
	mlc_uuid4(id);
	p[0] = MLC_PSTR(id);
	p[1] = MLC_PSTR(json_object_get_string(json_object_object_get(m, "modelname")));
	p[2] = MLC_PSTR(json_object_get_string(json_object_object_get(m, "modelkind")));
	for (i = 0; i < NJSON; i++)
		p[3 + i] = mlc_json_param(json_object_object_get(m, json_columns[i]));
	p[3 + NJSON] = MLC_PSTR(mlc_new_owner(r));
	/* created_at and updated_at: the database's clock, one reading.  The
	 * INSERT returns the row as it was written (RETURNING, so no read
	 * back), and without tags it is one statement, committed on its own.
	 * A transaction rolled back by a conflict (on a Galera cluster, a
	 * certification failure, e.g. while a node rejoins) wrote nothing:
	 * it is made again, twice at most, before the 503.  The row's text
	 * enters the worker's cache before the COMMIT; a read validates the
	 * cache against the database, so a row never committed is never
	 * served. */
	tags = json_object_object_get(m, "modeltags");
	with_tags = tags && json_object_array_length(tags) > 0;
	for (attempt = 1;; attempt++) {
		struct new_row row = { &body, 0 };

		mlc_jbuf_reset(&body);
		if ((!with_tags || mlc_db_begin(r->db, &err) == 0) &&
		    (n = mlc_db_exec(r->db, "INSERT INTO models (" MODEL_COLS ", ownerid) "
				     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
				     "UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), ?) RETURNING " READ_COLS,
				     p, 4 + NJSON, new_row, &row, &err)) > 0 &&
		    (!with_tags || (store_tags(r, id, row.seq, tags, 0, &err) == 0 &&
				    mlc_db_commit(r->db, &err) == 0)))
			break;
		if (n == 0) {
			err.code = 500;
			snprintf(err.msg, sizeof(err.msg), "the new model's row was not returned");
		}
		if (mlc_db_retry(r->db, attempt, 3, 0, &err, r->request_id, "model add"))
			continue;
		json_object_put(m);
		mlc_reply_err(r, &err);
		return;
	}
	json_object_put(m);
	mlc_reply_text(r, 201, "application/json", body.s, body.len);
}

void mlc_h_model_get(struct mlc_req *r)
{
	reply_model_or_404(r, 200, mlc_param(r, "model_id"));
}

#define ALL_MODELS "SELECT " READ_COLS " FROM models ORDER BY seq LIMIT ? OFFSET ?"
/* The page's keys from the index alone (sql/018).  Without the hint, the
 * prepared statement (LIMIT ?) walked models_seq, which lacks row_version,
 * and read each row's row_version from the table (the slow log's plan:
 * index models_seq, 312 pages accessed per page of 100 instead of 3): the
 * database's CPU per page was three times that of /model/getkind. */
#define ALL_KEYS "SELECT modelid, seq, " MLC_ROW_VERSION " FROM models " \
	"FORCE INDEX (models_seq_version) ORDER BY seq LIMIT ? OFFSET ?"

/* The published API pages /model/all (100 by default); getkind and search
 * have no paging there, so they list every match unless asked for less. */
void mlc_h_model_all(struct mlc_req *r)
{
	long skip, limit;

	if (mlc_paging_or_422(r, MLC_DEFAULT_LIMIT, &skip, &limit) < 0)
		return;
	reply_models(r, ALL_KEYS, ALL_MODELS, NULL, 0, skip, limit);
}

void mlc_h_model_getkind(struct mlc_req *r)
{
	long skip, limit;

	if (mlc_paging_or_422(r, MLC_NO_LIMIT, &skip, &limit) < 0)
		return;
	struct mlc_param p[] = { MLC_PSTR(mlc_param(r, "modelkind")) };
	/* The index is named for the reason ALL_KEYS names its own: walking
	 * models_seq for the order would read every row from the table. */
	reply_models(r, "SELECT modelid, seq, " MLC_ROW_VERSION " FROM models "
		     "FORCE INDEX (models_kind_version) WHERE modelkind = ? "
		     "ORDER BY seq LIMIT ? OFFSET ?",
		     "SELECT " READ_COLS " FROM models WHERE modelkind = ? "
		     "ORDER BY seq LIMIT ? OFFSET ?", p, 1, skip, limit);
}

#define SEARCH_HEAD "SELECT " READ_COLS " FROM models WHERE seq IN " \
	"(SELECT model_seq FROM model_tags WHERE tag IN (?"
/* The same rows' keys, from the index alone (sql/018; the optimizer would
 * rather look each seq up in models_seq, which lacks row_version). */
#define SEARCH_KEYS_HEAD "SELECT modelid, seq, " MLC_ROW_VERSION " FROM models " \
	"FORCE INDEX (models_seq_version) WHERE seq IN " \
	"(SELECT model_seq FROM model_tags WHERE tag IN (?"
#define SEARCH_TAIL ")) ORDER BY seq LIMIT ? OFFSET ?"
/* One tag (the common case): the same rows' keys read from the tag's
 * rows of model_tags, which its primary key (tag, model_seq) holds in
 * seq order, each joined to its models row by the index alone: about two
 * index reads per row of the page, however rare or common the tag.  (Left
 * to itself, the optimizer may instead walk models in seq order and probe
 * model_tags for every model: four probes per row for a tag on a quarter
 * of the models, a thousand for a rare one.)  Both statements need a
 * models row with seq = model_seq, so they select the same rows. */
#define SEARCH_ONE_TAG_KEYS "SELECT m.modelid, m.seq, " MLC_ROW_VERSION_OF("m.row_version") \
	" FROM model_tags t STRAIGHT_JOIN models m FORCE INDEX (models_seq_version) " \
	"ON m.seq = t.model_seq WHERE t.tag = ? ORDER BY t.model_seq LIMIT ? OFFSET ?"

/*
 * Models having any of the given tags.  The statement text depends only
 * on how many tags there are (one placeholder each), never on their
 * values, so each shape is prepared once per connection.
 */
void mlc_h_model_search(struct mlc_req *r)
{
	struct mlc_param p[MAX_SEARCH_TAGS];
	struct mlc_buf sql = MLC_BUF_INIT(sizeof(SEARCH_HEAD) + 3 * MAX_SEARCH_TAGS +
					  sizeof(SEARCH_TAIL));
	struct mlc_buf keys = MLC_BUF_INIT(sizeof(SEARCH_KEYS_HEAD) + 3 * MAX_SEARCH_TAGS +
					   sizeof(SEARCH_TAIL));
	size_t i, ntags = 0;
	long skip, limit;

	if (mlc_paging_or_422(r, MLC_NO_LIMIT, &skip, &limit) < 0)
		return;
	for (i = 0; i < r->query.n; i++) {
		if (strcmp(r->query.pairs[i].key, "tags"))
			continue;
		if (ntags == MAX_SEARCH_TAGS) {
			json_object *errors = json_object_new_array();
			char msg[80];

			snprintf(msg, sizeof(msg), "ensure this value has at most %d items",
				 MAX_SEARCH_TAGS);
			mlc_validate_error(errors, msg, "value_error.list.max_items",
					   "query", "tags", NULL);
			mlc_reply_422(r, errors);
			return;
		}
		p[ntags++] = MLC_PSTR(r->query.pairs[i].value);
	}
	/* Without tags every model matches. */
	if (!ntags) {
		reply_models(r, ALL_KEYS, ALL_MODELS, NULL, 0, skip, limit);
		return;
	}
	/* "?" then ", ?" for each further tag: the caps hold the most. */
	mlc_buf_puts(&sql, SEARCH_HEAD);
	mlc_buf_puts(&keys, SEARCH_KEYS_HEAD);
	for (i = 1; i < ntags; i++) {
		mlc_buf_puts(&sql, ", ?");
		mlc_buf_puts(&keys, ", ?");
	}
	mlc_buf_puts(&sql, SEARCH_TAIL);
	mlc_buf_puts(&keys, SEARCH_TAIL);
	if (sql.failed || keys.failed)
		mlc_error(r, 500, "the search statement does not fit its buffer");
	else
		reply_models(r, ntags == 1 ? SEARCH_ONE_TAG_KEYS : mlc_buf_str(&keys),
			     mlc_buf_str(&sql), p, (unsigned)ntags, skip, limit);
	mlc_buf_release(&sql);
	mlc_buf_release(&keys);
}

/* Append "col = ?, " for every field present in the partial update m
 * (the names are the service's own, never the request's). */
static int seq_of(void *ctx, char **cols, const unsigned long *lens, unsigned n)
{
	*(unsigned long long *)ctx = col_ull(cols[0]);
	return 0;
}

static unsigned patch_assignments(json_object *m, struct mlc_buf *sql, struct mlc_param *p)
{
	static const char *const plain[] = { "modelname", "modelkind" };
	unsigned np = 0;
	size_t i;
	json_object *v;

	for (i = 0; i < 2; i++) {
		if (!json_object_object_get_ex(m, plain[i], &v))
			continue;
		mlc_buf_appendf(sql, "%s = ?, ", plain[i]);
		p[np++] = MLC_PSTR(json_object_get_string(v));
	}
	for (i = 0; i < NJSON; i++) {
		if (!json_object_object_get_ex(m, json_columns[i], &v))
			continue;
		mlc_buf_appendf(sql, "%s = ?, ", json_columns[i]);
		p[np++] = mlc_json_param(v);
	}
	return np;
}


void mlc_h_model_patch(struct mlc_req *r)
{
	const char *id = mlc_param(r, "model_id");
	struct mlc_err err = { 0, "" };
	struct mlc_param p[4 + NJSON];
	struct mlc_buf sql = MLC_BUF_INIT(1024);
	struct mlc_param key[] = { MLC_PSTR(id) };
	unsigned long long seq = 0;
	json_object *m, *tags;
	unsigned np;
	long long found;

	if (mlc_model_owned_or_reply(r, id, "change") < 0 ||
	    !(m = mlc_body_or_422(r, model_schema, 1)))
		return;
	mlc_buf_puts(&sql, "UPDATE models SET ");
	np = patch_assignments(m, &sql, p);
	mlc_buf_puts(&sql, "updated_at = UTC_TIMESTAMP(6) WHERE modelid = ?");
	p[np++] = MLC_PSTR(id);
	if (sql.failed) {
		mlc_buf_release(&sql);
		json_object_put(m);
		mlc_error(r, 500, "the update statement does not fit its buffer");
		return;
	}
	if (mlc_db_begin(r->db, &err) < 0 ||
	    (found = mlc_db_exec(r->db, "SELECT seq FROM models WHERE modelid = ? FOR UPDATE",
				 key, 1, seq_of, &seq, &err)) < 0 ||
	    (found && mlc_db_exec(r->db, mlc_buf_str(&sql), p, np, NULL, NULL, &err) < 0) ||
	    (found && json_object_object_get_ex(m, "modeltags", &tags) &&
	     store_tags(r, id, seq, tags, 1, &err) < 0) ||
	    mlc_db_commit(r->db, &err) < 0) {
		mlc_db_rollback(r->db);
		mlc_buf_release(&sql);
		json_object_put(m);
		mlc_reply_err(r, &err);
		return;
	}
	mlc_buf_release(&sql);
	json_object_put(m);
	reply_model_fresh(r, 200, id);
}

struct active_dep {
	char id[65];
	char owner[256];
};

static int first_active(void *ctx, char **cols, const unsigned long *lens, unsigned n)
{
	struct active_dep *a = ctx;

	snprintf(a->id, sizeof(a->id), "%s", cols[0]);
	snprintf(a->owner, sizeof(a->owner), "%s", cols[1]);
	return 1;
}

void mlc_h_model_delete(struct mlc_req *r)
{
	const char *id = mlc_param(r, "model_id");
	struct mlc_err err = { 0, "" };
	struct mlc_param mine[] = { MLC_PSTR(id), MLC_PSTR(r->who.owner) };
	struct active_dep active = { "", "" };
	long long n = 0;
	json_object *o;

	if (mlc_model_owned_or_reply(r, id, "delete") < 0)
		return;
	/* The model row is locked first: a deployment being added at the same
	 * time (which reads it in share mode) is either seen here or waits.
	 * The caller's own active deployment is named first. */
	if (mlc_db_begin(r->db, &err) < 0 ||
	    (n = exec_with_id(r, id, "SELECT 1 FROM models WHERE modelid = ? FOR UPDATE", &err)) < 0 ||
	    (n && mlc_db_exec(r->db, "SELECT deployment_id, ownerid FROM deployments WHERE modelid = ? "
			      "AND status IN ('waiting', 'building', 'deployed', 'stopping') "
			      "ORDER BY ownerid = ? DESC LIMIT 1", mine, 2, first_active, &active,
			      &err) < 0) ||
	    (n && !active.id[0] && exec_with_id(r, id, "DELETE FROM models WHERE modelid = ?", &err) < 0) ||
	    mlc_db_commit(r->db, &err) < 0) {
		mlc_db_rollback(r->db);
		mlc_reply_err(r, &err);
		return;
	}
	if (n == 0) {
		mlc_error(r, 404, "model '%s' not found", id);
		return;
	}
	if (active.id[0] && !mlc_owns(r, active.owner)) {
		/* Another owner's deployment: its id is not this caller's to know. */
		mlc_error(r, 409, "model '%s' is deployed by another owner; it cannot be "
				 "deleted while it serves", id);
		return;
	}
	if (active.id[0]) {
		mlc_error(r, 409, "model '%s' has an active deployment '%s'; "
				 "DELETE /deployment/%s first", id, active.id, active.id);
		return;
	}
	/* The row is gone (its artifact rows with it): now the files. */
	if (mlc_store_remove_model(id) < 0)
		mlc_log("error", r->request_id, "cannot remove the files of model %s: %s", id,
			strerror(errno));
	/* "message" is what clients of the Python service look for. */
	o = json_object_new_object();
	json_object_object_add(o, "message", json_object_new_string("Model was deleted successfully"));
	json_object_object_add(o, "detail", json_object_new_string("model deleted"));
	json_object_object_add(o, "modelid", json_object_new_string(id));
	mlc_reply_json(r, 200, o);
}
