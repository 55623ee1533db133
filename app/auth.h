/*
 * auth.h - who is calling: bearer tokens checked against the `tokens`
 * table (through a per-worker cache of at most MLC_AUTH_CACHE_MS), the
 * scope each route needs, and the per-token rate limit.  docs/SECURITY.md
 * describes the rules.
 */
#ifndef MLC_AUTH_H
#define MLC_AUTH_H

#include <json-c/json.h>

struct mlc_req;
struct mlc_param;

/* What a route needs, and what a token allows (ordered: a token of a
 * scope may call every route of that scope or below). */
enum mlc_scope {
	MLC_SCOPE_NONE = 0,	/* no token at all (GET /health) */
	MLC_SCOPE_READ = 1,	/* reading */
	MLC_SCOPE_WRITE = 2,	/* anything that changes state, predictions included */
	MLC_SCOPE_ADMIN = 3,	/* everything, every owner's resources */
};

/* How long a worker trusts what it read about a token: revocation and
 * expiry are seen by every worker within this many milliseconds. */
#define MLC_AUTH_CACHE_MS 500
/* last_used_at is written at most once per this many seconds per token. */
#define MLC_AUTH_TOUCH_S 60

/* The caller of one request, filled by mlc_auth_check. */
struct mlc_principal {
	int on;			/* MLC_AUTH is on (otherwise everything is allowed) */
	int scope;		/* the token's scope; MLC_SCOPE_ADMIN when auth is off */
	long long token_id;	/* 0 when auth is off */
	char owner[256];	/* the token's ownerid; "" when auth is off */
};

/*
 * In the master, before forking: check that the configuration may be
 * served (auth off only on a loopback MLC_HOST) and map the shared
 * rate-limit table when MLC_RATE_LIMIT is set.  Returns -1 with msg
 * filled when mlc-api must refuse to start.
 */
int mlc_auth_setup(char *msg, size_t cap);

/*
 * Check the request's token against need (enum mlc_scope) and the rate
 * limit, filling r->who.  Returns 0 when the handler may run; otherwise
 * the reply (401, 403, 429 or 503) has been sent and it returns -1.
 */
int mlc_auth_check(struct mlc_req *r, int need);

/* ---- ownership (docs/SECURITY.md) ---- */

/* An admin token, or auth off: every owner's resources. */
int mlc_is_admin(const struct mlc_req *r);

/* May the caller act on what owner owns?  Admins may; others only on
 * their own (owner ids compare exactly). */
int mlc_owns(const struct mlc_req *r, const char *owner);

/* The owner new models get: the token's, or "admin" with auth off. */
const char *mlc_new_owner(const struct mlc_req *r);

/*
 * The ownerid of a body (body_owner, NULL when absent or null): with auth
 * on it must be the token's owner unless the token is an admin's (403
 * otherwise, and -1), and it is the token's owner when absent.  With auth
 * off it is whatever the body says (NULL if absent).  Returns 0 with
 * *owner set (valid as long as r and the body are).
 */
int mlc_body_owner(struct mlc_req *r, const char *body_owner, const char **owner);

/* The owner lists are filtered by (the token's owner, or NULL for an
 * admin: everything) as the two parameters of an SQL condition
 * "(? IS NULL OR ownerid = ?)": both NULL for an admin. */
#define MLC_OWNER_COND "(? IS NULL OR ownerid = ?)"
void mlc_owner_params(const struct mlc_req *r, struct mlc_param *out);

/* As mlc_reply_row_or_404, for a row that belongs to an owner: sql ends in
 * "WHERE <key> = ? AND " MLC_OWNER_COND, and another owner's row is a 404
 * like a missing one (its id does not leak). */
typedef json_object *(*mlc_owned_row_json)(char **cols);
void mlc_reply_owned_row_or_404(struct mlc_req *r, int status, const char *sql, const char *id,
				mlc_owned_row_json to_json, const char *what);

#endif
