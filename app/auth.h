/*
 * auth.h - who is calling: bearer tokens checked against the `tokens`
 * table (through a per-worker cache of at most MLC_AUTH_CACHE_MS), the
 * scope each route needs, and the per-token rate limit.  docs/SECURITY.md
 * describes the rules.
 */
#ifndef MLC_AUTH_H
#define MLC_AUTH_H

struct mlc_req;

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

/* MLC_AUTH from the configuration: 1 on, 0 off, -1 neither. */
int mlc_auth_config(void);

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

/* The scope's name ("read", ...). */
const char *mlc_scope_name(int scope);

#endif
