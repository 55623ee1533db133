/*
 * db.h - the worker's MariaDB connection: prepared statements only,
 * cached per connection, with reconnection when the server went away.
 */
#ifndef MLC_DB_H
#define MLC_DB_H

#include <stddef.h>
#include "mlc.h"

struct mlc_db;

enum mlc_ptype { MLC_P_NULL, MLC_P_STR, MLC_P_LONG };

struct mlc_param {
	enum mlc_ptype type;
	const char *s;		/* MLC_P_STR: bytes, need not be NUL-terminated */
	size_t len;
	long long l;		/* MLC_P_LONG */
};

#define MLC_PSTR(str) ((struct mlc_param){ MLC_P_STR, (str), strlen(str), 0 })
#define MLC_PLONG(v) ((struct mlc_param){ MLC_P_LONG, NULL, 0, (v) })
#define MLC_PNULL ((struct mlc_param){ MLC_P_NULL, NULL, 0, 0 })

/* A row_version column (models, sql/018; operations, sql/021) - the time
 * of the row's last change, kept by the database itself (ON UPDATE
 * CURRENT_TIMESTAMP(6)) - read as one integer of microseconds; _OF names
 * the column (a table's alias in a join). */
#define MLC_ROW_VERSION_OF(col) "TO_SECONDS(" col ") * 1000000 + MICROSECOND(" col ")"
#define MLC_ROW_VERSION MLC_ROW_VERSION_OF("row_version")

/* Most parameters one statement may bind.  A handler whose parameter
 * count depends on the request (search: one per tag) bounds that count
 * with a static assertion against this. */
#define MLC_DB_MAX_PARAMS 128

/*
 * Called once per result row: cols[i] is NUL-terminated text or NULL for
 * SQL NULL, lens[i] its length.  Return nonzero to stop early.
 */
typedef int (*mlc_row_cb)(void *ctx, char **cols, const unsigned long *lens, unsigned ncols);

/* Connection settings come from the configuration (MLC_DB_*); nothing is
 * connected until the first statement. */
struct mlc_db *mlc_db_new(void);
void mlc_db_free(struct mlc_db *db);

/*
 * Prepare (or reuse) sql, bind params, execute, and feed rows to cb.
 * sql is fixed text; request data only ever travels as params.  When the
 * server has gone away and no transaction is open, reconnects and retries
 * once.  Returns the number of affected rows (or rows fetched) >= 0, or -1
 * with err filled (err->code 503 when the database is unreachable, 409 on a
 * duplicate key, 500 otherwise, more than MLC_DB_MAX_PARAMS params
 * included).
 */
long long mlc_db_exec(struct mlc_db *db, const char *sql,
		      const struct mlc_param *params, unsigned nparams,
		      mlc_row_cb cb, void *ctx, struct mlc_err *err);

/*
 * The database's clock, UTC_TIMESTAMP(6), as a DATETIME(6) literal
 * "YYYY-MM-DD HH:MM:SS.ffffff": 0, or -1 with err.  The one clock of every
 * time the service stores or compares with a stored one (the worker's
 * clock is never read for that; see docs/DESIGN-NOTES.md "One clock").  A
 * statement writes UTC_TIMESTAMP(6) in its own text; this is for a time
 * that must also go somewhere else (a job bundle) equal to the row's.
 */
int mlc_db_now(struct mlc_db *db, char out[32], struct mlc_err *err);

/* The answer set_db_err gives when the server rolled the transaction back
 * for a conflict (a deadlock, a lock wait timeout, a Galera certification
 * failure): 503, nothing of the transaction written. */
#define MLC_DB_CONFLICT_MSG "the change conflicted with a concurrent one and was not made: try again"

/* Did err come from such a conflict? */
int mlc_db_err_conflict(const struct mlc_err *err);

/*
 * The one rule for a transaction that failed: call it after attempt
 * (1, 2, ...) of at most max failed with err.  The transaction is rolled
 * back.  When err is a conflict (nothing was written) and attempts are
 * left, logs one warn line naming the request and what is made again
 * (what_fmt, printf-style), pauses a random part of pause_ms times
 * attempt (hosts that collided once do not collide again in step; 0: no
 * pause), and returns 1: make the whole transaction again.  Otherwise 0:
 * answer with err (a conflict that outlasted max attempts is its 503).
 */
int mlc_db_retry(struct mlc_db *db, int attempt, int max, int pause_ms,
		 const struct mlc_err *err, const char *request_id, const char *what_fmt, ...)
	__attribute__((format(printf, 7, 8)));

int mlc_db_begin(struct mlc_db *db, struct mlc_err *err);
int mlc_db_commit(struct mlc_db *db, struct mlc_err *err);
void mlc_db_rollback(struct mlc_db *db);

/* Close the connection (the server rolls back an open transaction); the
 * next statement connects again. */
void mlc_db_disconnect(struct mlc_db *db);

/* Check the connection (reconnecting if needed). */
int mlc_db_ping(struct mlc_db *db, struct mlc_err *err);

#endif
