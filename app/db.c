/*
 * db.c - MariaDB Connector/C behind a small prepared-statement API.
 *
 * Each worker owns one connection.  Statements are prepared once per
 * connection and kept in a small cache keyed by their text; losing the
 * connection drops the cache with it.  All text is exchanged as strings
 * (MYSQL_TYPE_STRING binds), which keeps DATETIME and DECIMAL exact.
 *
 * Results are read unbuffered (no mysql_stmt_store_result): each
 * mysql_stmt_fetch takes the next row off the connection, so a result of
 * any size costs one row of memory, and list replies stream it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <mysql.h>
#include <errmsg.h>
#include <mysqld_error.h>

#include "buildinfo.h"
#include "conf.h"
#include "db.h"
#include "dbtarget.h"
#include "log.h"
#include "metrics.h"

#define STMT_CACHE 64
#define MAX_PARAMS MLC_DB_MAX_PARAMS
/* Columns are fixed by each statement's text, never by a request: a
 * statement with more is a programming error found by its first use. */
#define MAX_COLS 32
#define COL_INIT 512
/* A column buffer grown past this for a long value is given back after
 * the statement, so that one big row does not stay with the worker. */
#define COL_KEEP (64 * 1024)

struct stmt_entry {
	char *sql;
	MYSQL_STMT *stmt;
};

struct mlc_db {
	MYSQL *conn;
	int in_txn;
	int had_conn;			/* a connection was open before: the next is a reconnect */
	long long delivered;		/* rows the running statement gave its callback */
	struct stmt_entry cache[STMT_CACHE];
	size_t ncache;
	/* Result buffers reused across statements. */
	char *colbuf[MAX_COLS];
	unsigned long colcap[MAX_COLS];
};

struct mlc_db *mlc_db_new(void)
{
	return mlc_xcalloc(1, sizeof(struct mlc_db));
}

static void drop_connection(struct mlc_db *db)
{
	size_t i;

	for (i = 0; i < db->ncache; i++) {
		mysql_stmt_close(db->cache[i].stmt);
		free(db->cache[i].sql);
	}
	db->ncache = 0;
	if (db->conn)
		mysql_close(db->conn);
	db->conn = NULL;
	db->in_txn = 0;
}

void mlc_db_free(struct mlc_db *db)
{
	unsigned i;

	if (!db)
		return;
	drop_connection(db);
	for (i = 0; i < MAX_COLS; i++)
		free(db->colbuf[i]);
	free(db);
}

static int connect_db(struct mlc_db *db, struct mlc_err *err)
{
	struct mlc_db_target t;
	char msg[MLC_ERR_MAX];
	unsigned int timeout = (unsigned)mlc_config_long("MLC_DB_TIMEOUT", 5);
	unsigned int protocol;
	my_bool off = 0;

	if (mlc_db_target_config(&t, msg, sizeof(msg)) < 0) {
		mlc_log("error", NULL, "database: %s", msg);
		mlc_error(err, 503, "database unavailable: try again shortly");
		return -1;
	}
	/* The protocol is explicit: libmariadb would otherwise take a host
	 * "localhost" as its compiled-in socket and ignore MLC_DB_PORT, where
	 * the Python daemons connect as dbtarget.h says. */
	protocol = t.via == MLC_DB_VIA_SOCKET ? MYSQL_PROTOCOL_SOCKET : MYSQL_PROTOCOL_TCP;
	db->conn = mysql_init(NULL);
	if (!db->conn)
		mlc_die("mysql_init: out of memory");
	mysql_options(db->conn, MYSQL_OPT_PROTOCOL, &protocol);
	mysql_options(db->conn, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
	mysql_options(db->conn, MYSQL_OPT_READ_TIMEOUT, &timeout);
	mysql_options(db->conn, MYSQL_OPT_WRITE_TIMEOUT, &timeout);
	mysql_options(db->conn, MYSQL_OPT_RECONNECT, &off);
	mysql_options(db->conn, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	mysql_options(db->conn, MYSQL_INIT_COMMAND, "SET time_zone = '+00:00'");
	/* Short transactions that never read their own range twice: READ
	 * COMMITTED avoids the gap locks that make concurrent inserts deadlock. */
	mysql_options(db->conn, MYSQL_INIT_COMMAND,
		      "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED");
	if (!mysql_real_connect(db->conn, t.via == MLC_DB_VIA_TCP ? t.host : "localhost",
				mlc_config_get("MLC_DB_USER", "mlc"),
				mlc_config_get("MLC_DB_PASSWORD", ""),
				mlc_config_get("MLC_DB_NAME", "mlconnector"),
				t.via == MLC_DB_VIA_TCP ? t.port : 0,
				t.via == MLC_DB_VIA_SOCKET ? t.socket : NULL, 0)) {
		mlc_log("error", NULL, "database: %s", mysql_error(db->conn));
		mlc_metrics_db_error(MLC_METRICS_DB_CONNECT);
		mlc_error(err, 503, "database unavailable: try again shortly");
		mysql_close(db->conn);
		db->conn = NULL;
		return -1;
	}
	if (db->had_conn)
		mlc_metrics_db_reconnect();
	db->had_conn = 1;
	return 0;
}

static int is_conn_error(unsigned code)
{
	return code == CR_SERVER_GONE_ERROR || code == CR_SERVER_LOST ||
	       code == CR_CONNECTION_ERROR || code == CR_CONN_HOST_ERROR ||
	       code == ER_CONNECTION_KILLED || code == CR_SERVER_LOST_EXTENDED ||
	       code == ER_SERVER_SHUTDOWN;
}

/*
 * The transaction was rolled back whole by the server: an InnoDB deadlock
 * or lock wait timeout, or - on a Galera cluster - a certification
 * failure (a concurrent transaction on another node changed the same rows
 * first; the node reports it as a deadlock, on the statement or on the
 * COMMIT).  Nothing of it was written: the client may send it again.
 */
static int is_conflict(unsigned code)
{
	return code == ER_LOCK_DEADLOCK || code == ER_LOCK_WAIT_TIMEOUT;
}

/*
 * A Galera node that is not in the Primary Component (cut off from the
 * majority of the cluster, or still joining it) refuses every statement
 * with ER_UNKNOWN_COM_ERROR ("WSREP has not yet prepared node for
 * application use"): its data may be stale and it may not write.  The
 * connection is given up, so the next statement connects anew.
 */
int mlc_db_err_conflict(const struct mlc_err *err)
{
	return err && err->code == 503 && !strcmp(err->msg, MLC_DB_CONFLICT_MSG);
}

int mlc_db_retry(struct mlc_db *db, int attempt, int max, int pause_ms,
		 const struct mlc_err *err, const char *request_id, const char *what_fmt, ...)
{
	char what[256];
	unsigned rnd = 0;
	va_list ap;

	mlc_db_rollback(db);
	if (attempt >= max || !mlc_db_err_conflict(err))
		return 0;
	va_start(ap, what_fmt);
	vsnprintf(what, sizeof(what), what_fmt, ap);
	va_end(ap);
	mlc_log("warn", request_id, "%s: rolled back by a conflict; making it again "
		"(attempt %d of %d)", what, attempt + 1, max);
	if (pause_ms > 0) {
		if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			rnd = (unsigned)attempt * 2654435761u;
		usleep((useconds_t)(rnd % ((unsigned)pause_ms * 1000u)) * (useconds_t)attempt);
	}
	return 1;
}

static int is_not_ready(unsigned code)
{
	return code == ER_UNKNOWN_COM_ERROR;
}

static void set_db_err(struct mlc_err *err, unsigned code, const char *msg)
{
	if (is_not_ready(code)) {
		mlc_log("error", NULL, "database: node not ready: %s", msg);
		mlc_metrics_db_error(MLC_METRICS_DB_NOT_READY);
		mlc_error(err, 503, "database unavailable: try again shortly");
	} else if (is_conflict(code)) {
		mlc_log("warn", NULL, "database: transaction rolled back: %s", msg);
		mlc_metrics_db_error(MLC_METRICS_DB_CONFLICT);
		mlc_error(err, 503, MLC_DB_CONFLICT_MSG);
	} else if (is_conn_error(code)) {
		/* The client sees that the database is down, the log sees why. */
		mlc_log("error", NULL, "database: %s", msg);
		mlc_metrics_db_error(MLC_METRICS_DB_LOST);
		mlc_error(err, 503, "database unavailable: try again shortly");
	} else if (code == ER_DUP_ENTRY) {
		mlc_metrics_db_error(MLC_METRICS_DB_DUPLICATE);
		mlc_error(err, 409, "duplicate entry: %s", msg);
	} else {
		mlc_metrics_db_error(MLC_METRICS_DB_OTHER);
		mlc_error(err, 500, "database error %u: %s", code, msg);
	}
}

static MYSQL_STMT *get_stmt(struct mlc_db *db, const char *sql, unsigned *code,
			    struct mlc_err *err)
{
	MYSQL_STMT *st;
	size_t i;

	for (i = 0; i < db->ncache; i++)
		if (!strcmp(db->cache[i].sql, sql))
			return db->cache[i].stmt;
	st = mysql_stmt_init(db->conn);
	if (!st)
		mlc_die("mysql_stmt_init: out of memory");
	if (mysql_stmt_prepare(st, sql, strlen(sql))) {
		*code = mysql_stmt_errno(st);
		set_db_err(err, *code, mysql_stmt_error(st));
		mysql_stmt_close(st);
		return NULL;
	}
	if (db->ncache == STMT_CACHE) {
		/* Full: evict the oldest; the cache only overflows with unusual
		 * numbers of distinct query shapes. */
		mysql_stmt_close(db->cache[0].stmt);
		free(db->cache[0].sql);
		memmove(db->cache, db->cache + 1, (STMT_CACHE - 1) * sizeof(db->cache[0]));
		db->ncache--;
	}
	db->cache[db->ncache].sql = mlc_xstrdup(sql);
	db->cache[db->ncache].stmt = st;
	db->ncache++;
	return st;
}

static void bind_params(MYSQL_BIND *b, const struct mlc_param *p, unsigned n,
			unsigned long *lens, my_bool *nulls)
{
	unsigned i;

	memset(b, 0, n * sizeof(*b));
	for (i = 0; i < n; i++) {
		nulls[i] = p[i].type == MLC_P_NULL;
		b[i].is_null = &nulls[i];
		if (p[i].type == MLC_P_LONG) {
			b[i].buffer_type = MYSQL_TYPE_LONGLONG;
			b[i].buffer = (void *)&p[i].l;
		} else if (p[i].type == MLC_P_STR) {
			lens[i] = p[i].len;
			b[i].buffer_type = MYSQL_TYPE_STRING;
			b[i].buffer = (void *)p[i].s;
			b[i].buffer_length = p[i].len;
			b[i].length = &lens[i];
		} else {
			b[i].buffer_type = MYSQL_TYPE_NULL;
		}
	}
}

static void shrink_columns(struct mlc_db *db, unsigned ncols)
{
	unsigned i;

	for (i = 0; i < ncols && i < MAX_COLS; i++) {
		if (db->colcap[i] > COL_KEEP) {
			free(db->colbuf[i]);
			db->colbuf[i] = NULL;
			db->colcap[i] = 0;
		}
	}
}

/* Fetch every row of an executed statement into cb; grow column buffers
 * for values longer than they are. */
static long long fetch_rows(struct mlc_db *db, MYSQL_STMT *st, unsigned ncols,
			    mlc_row_cb cb, void *ctx, unsigned *code, struct mlc_err *err)
{
	MYSQL_BIND b[MAX_COLS];
	unsigned long lens[MAX_COLS];
	my_bool nulls[MAX_COLS], errs[MAX_COLS];
	char *cols[MAX_COLS];
	long long nrows = 0;
	int stop = 0, rc;
	unsigned i;

	if (ncols > MAX_COLS)
		mlc_die("query returns %u columns, more than %d", ncols, MAX_COLS);
	memset(b, 0, sizeof(b));
	for (i = 0; i < ncols; i++) {
		if (!db->colbuf[i]) {
			db->colcap[i] = COL_INIT;
			db->colbuf[i] = mlc_xmalloc(COL_INIT);
		}
		b[i].buffer_type = MYSQL_TYPE_STRING;
		b[i].buffer = db->colbuf[i];
		b[i].buffer_length = db->colcap[i] - 1;
		b[i].length = &lens[i];
		b[i].is_null = &nulls[i];
		b[i].error = &errs[i];
	}
	if (mysql_stmt_bind_result(st, b))
		goto fail;
	while (!stop && (rc = mysql_stmt_fetch(st)) != MYSQL_NO_DATA) {
		int grew = 0;

		if (rc == 1)
			goto fail;
		for (i = 0; i < ncols; i++) {
			if (!nulls[i] && lens[i] >= db->colcap[i]) {
				grew = 1;
				db->colcap[i] = lens[i] + 1;
				db->colbuf[i] = mlc_xrealloc(db->colbuf[i], db->colcap[i]);
				b[i].buffer = db->colbuf[i];
				b[i].buffer_length = lens[i];
				if (mysql_stmt_fetch_column(st, &b[i], i, 0))
					goto fail;
				b[i].buffer_length = db->colcap[i] - 1;
			}
			cols[i] = nulls[i] ? NULL : db->colbuf[i];
			if (cols[i])
				cols[i][lens[i]] = '\0';
		}
		/* Rebind so later rows use the grown buffers. */
		if (grew && mysql_stmt_bind_result(st, b))
			goto fail;
		nrows++;
		db->delivered++;
		stop = cb ? cb(ctx, cols, lens, ncols) : 0;
	}
	/* With rows left (the callback stopped early), this reads and drops
	 * them, so the connection is ready for the next statement. */
	mysql_stmt_free_result(st);
	shrink_columns(db, ncols);
	return nrows;
fail:
	/* A row that could not be read (the server went away or sent an error
	 * in the middle of the result) leaves its error on the connection,
	 * not on the statement. */
	*code = mysql_stmt_errno(st);
	if (*code)
		set_db_err(err, *code, mysql_stmt_error(st));
	else if ((*code = mysql_errno(db->conn)))
		set_db_err(err, *code, mysql_error(db->conn));
	else
		set_db_err(err, *code = CR_UNKNOWN_ERROR, "reading a row failed");
	mysql_stmt_free_result(st);
	shrink_columns(db, ncols);
	return -1;
}

static long long exec_once(struct mlc_db *db, const char *sql,
			   const struct mlc_param *params, unsigned nparams,
			   mlc_row_cb cb, void *ctx, unsigned *code, struct mlc_err *err);

static int version_row(void *ctx, char **cols, const unsigned long *lens, unsigned ncols)
{
	*(long *)ctx = cols[0] ? strtol(cols[0], NULL, 10) : 0;
	return 1;
}

/*
 * A new connection serves only when the database has every migration this
 * binary was built with (sql/NNN-*.sql, see buildinfo.h): code built for a
 * newer schema would fail on missing tables and columns in ways that are
 * hard to read.  When the schema is behind, the connection is dropped (so
 * the next statement checks again: running the migrations needs no
 * restart) and err names what to apply.  *code stays 0 then: no retry.
 */
static int check_schema(struct mlc_db *db, unsigned *code, struct mlc_err *err)
{
	static const struct {
		int version;
		const char *name;
	} migrations[] = { MLC_MIGRATIONS };
	static long logged = -1;
	char names[300] = "";
	const char *first = "", *last = "";
	size_t i, len = 0, missing = 0;
	long have = 0;

	if (exec_once(db, "SELECT COALESCE(MAX(version), 0) FROM schema_version", NULL, 0,
		      version_row, &have, code, err) < 0) {
		if (*code != ER_NO_SUCH_TABLE) {
			drop_connection(db);
			return -1;
		}
		have = 0;	/* a database no migration ran on */
	}
	*code = 0;
	if (have >= MLC_SCHEMA_VERSION)
		return 0;
	/* Up to three are named; more as the first and the last of the run
	 * (the list grows with every release, the message must not). */
	for (i = 0; i < sizeof(migrations) / sizeof(migrations[0]); i++) {
		if (migrations[i].version <= have)
			continue;
		if (!missing)
			first = migrations[i].name;
		last = migrations[i].name;
		if (missing < 3 && len < sizeof(names))
			len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s",
						missing ? ", " : "", migrations[i].name);
		missing++;
	}
	if (missing > 3)
		snprintf(names, sizeof(names), "%s to %s (%zu files)", first, last, missing);
	mlc_error(err, 503, "database schema is at version %ld, mlc-api %s needs version %d: "
		    "%s %s %s not applied; run the migrations (mlc migrate)", have, MLC_VERSION,
		    MLC_SCHEMA_VERSION, missing == 1 ? "migration" : "migrations", names,
		    missing == 1 ? "is" : "are");
	if (logged != have) {
		/* Once per worker and version, not once per request. */
		mlc_log("error", NULL, "%s", err->msg);
		logged = have;
	}
	drop_connection(db);
	return -1;
}

static long long exec_once(struct mlc_db *db, const char *sql,
			   const struct mlc_param *params, unsigned nparams,
			   mlc_row_cb cb, void *ctx, unsigned *code, struct mlc_err *err)
{
	MYSQL_BIND b[MAX_PARAMS];
	unsigned long lens[MAX_PARAMS];
	my_bool nulls[MAX_PARAMS];
	MYSQL_STMT *st;
	unsigned ncols;

	*code = 0;
	db->delivered = 0;
	/* The bind arrays above hold MAX_PARAMS: more is refused before
	 * anything is bound, as an error of this request, not of the worker.
	 * Handlers bound their request-dependent counts below it statically
	 * (see route-models.c), so this is a second line of defence. */
	if (nparams > MAX_PARAMS) {
		mlc_log("error", NULL, "statement with %u parameters refused (at most %d): %.200s",
			nparams, MAX_PARAMS, sql);
		mlc_error(err, 500, "the statement has %u parameters, more than the %d "
			    "the service binds", nparams, MAX_PARAMS);
		*code = CR_UNKNOWN_ERROR;
		return -1;
	}
	if (!db->conn) {
		if (connect_db(db, err) < 0) {
			*code = CR_CONNECTION_ERROR;
			return -1;
		}
		if (check_schema(db, code, err) < 0)
			return -1;
	}
	if (!(st = get_stmt(db, sql, code, err)))
		return -1;
	/* The placeholders of the fixed statement text and the parameters
	 * its handler passes disagree: a programming error (placeholders are
	 * only ever generated together with their parameters). */
	if (nparams != mysql_stmt_param_count(st))
		mlc_die("statement takes %lu parameters, given %u: %s",
			mysql_stmt_param_count(st), nparams, sql);
	bind_params(b, params, nparams, lens, nulls);
	if ((nparams && mysql_stmt_bind_param(st, b)) || mysql_stmt_execute(st)) {
		*code = mysql_stmt_errno(st);
		set_db_err(err, *code, mysql_stmt_error(st));
		return -1;
	}
	/* The column count alone: mysql_stmt_result_metadata would build
	 * (and the caller free) a result description on every execution. */
	ncols = mysql_stmt_field_count(st);
	if (ncols)
		return fetch_rows(db, st, ncols, cb, ctx, code, err);
	return (long long)mysql_stmt_affected_rows(st);
}

static int now_row(void *ctx, char **cols, const unsigned long *lens, unsigned n)
{
	snprintf((char *)ctx, 32, "%s", cols[0] ? cols[0] : "");
	return 1;
}

int mlc_db_now(struct mlc_db *db, char out[32], struct mlc_err *err)
{
	out[0] = '\0';
	if (mlc_db_exec(db, "SELECT UTC_TIMESTAMP(6)", NULL, 0, now_row, out, err) < 0)
		return -1;
	if (!out[0])
		return mlc_error(err, 500, "the database gave no time");
	return 0;
}

long long mlc_db_exec(struct mlc_db *db, const char *sql,
		      const struct mlc_param *params, unsigned nparams,
		      mlc_row_cb cb, void *ctx, struct mlc_err *err)
{
	unsigned code;
	long long rc = exec_once(db, sql, params, nparams, cb, ctx, &code, err);

	if (rc >= 0)
		return rc;
	/* Rolled back whole: an autocommit statement that no row went out
	 * of is run once more (the node has already retried it
	 * wsrep_retry_autocommit times); inside a transaction the handler's
	 * earlier statements are gone too, so the error goes up (503). */
	if (is_conflict(code) && !db->in_txn && !db->delivered) {
		mlc_log("warn", NULL, "database: retrying a statement rolled back by a conflict");
		return exec_once(db, sql, params, nparams, cb, ctx, &code, err);
	}
	if (is_not_ready(code)) {
		drop_connection(db);
		return -1;
	}
	if (!is_conn_error(code))
		return rc;
	/* Lost after rows went to the callback (a list may have streamed them
	 * to a client already): running it again would hand them over twice. */
	if (db->delivered) {
		drop_connection(db);
		return -1;
	}
	/* Lost while the server may have been executing it: a statement that
	 * changes data may have been applied, so only reads are retried. */
	if (code == CR_SERVER_LOST && strncmp(sql, "SELECT", 6)) {
		drop_connection(db);
		return -1;
	}
	/* The server went away (restart, idle timeout, failover): start over
	 * on a new connection, unless a transaction was lost with it. */
	if (db->in_txn) {
		drop_connection(db);
		return -1;
	}
	drop_connection(db);
	mlc_log("warn", NULL, "database connection lost, reconnecting");
	return exec_once(db, sql, params, nparams, cb, ctx, &code, err);
}

int mlc_db_begin(struct mlc_db *db, struct mlc_err *err)
{
	if (mlc_db_exec(db, "START TRANSACTION", NULL, 0, NULL, NULL, err) < 0)
		return -1;
	db->in_txn = 1;
	return 0;
}

int mlc_db_commit(struct mlc_db *db, struct mlc_err *err)
{
	long long rc = mlc_db_exec(db, "COMMIT", NULL, 0, NULL, NULL, err);

	db->in_txn = 0;
	return rc < 0 ? -1 : 0;
}

void mlc_db_rollback(struct mlc_db *db)
{
	struct mlc_err ignored;

	if (db->conn && db->in_txn)
		mlc_db_exec(db, "ROLLBACK", NULL, 0, NULL, NULL, &ignored);
	db->in_txn = 0;
}

void mlc_db_disconnect(struct mlc_db *db)
{
	drop_connection(db);
}

int mlc_db_ping(struct mlc_db *db, struct mlc_err *err)
{
	return mlc_db_exec(db, "SELECT 1", NULL, 0, NULL, NULL, err) < 0 ? -1 : 0;
}
