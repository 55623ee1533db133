/*
 * auth.c - bearer tokens, scopes and the rate limit (see auth.h).
 *
 * A presented token is hashed (SHA-256) and looked up by its hash; the
 * worker keeps what it read in a small direct-mapped cache for at most
 * MLC_AUTH_CACHE_MS (less when the token expires sooner), so revocation
 * and expiry are seen by every worker within that time.  Expiry is judged
 * by the database's clock (UTC_TIMESTAMP), never the worker's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "auth.h"
#include "bearer.h"
#include "conf.h"
#include "http.h"
#include "log.h"

#define CACHE_SLOTS 64

enum tok_state { TOK_VALID, TOK_EXPIRED, TOK_REVOKED };

struct cached {
	int used;
	unsigned char hash[32];
	enum tok_state state;
	int scope;
	long long id;
	char owner[256];
	long long until_ms;	/* monotonic: trusted until then */
};

static struct cached cache[CACHE_SLOTS];
static struct mlc_rate_slot *rate_table;	/* shared, mapped by the master */
static long rate_limit, rate_burst;

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The scope's name ("read", ...). */
static const char *mlc_scope_name(int scope)
{
	switch (scope) {
	case MLC_SCOPE_READ: return "read";
	case MLC_SCOPE_WRITE: return "write";
	case MLC_SCOPE_ADMIN: return "admin";
	default: return "none";
	}
}

static int scope_from_name(const char *s)
{
	if (!strcmp(s, "read"))
		return MLC_SCOPE_READ;
	if (!strcmp(s, "write"))
		return MLC_SCOPE_WRITE;
	if (!strcmp(s, "admin"))
		return MLC_SCOPE_ADMIN;
	return MLC_SCOPE_NONE;
}

/* MLC_AUTH from the configuration: 1 on, 0 off, -1 neither. */
static int mlc_auth_config(void)
{
	/* Without the key, auth is on: only conf/mlconnector.conf's
	 * loopback quick start turns it off. */
	const char *v = mlc_config_get("MLC_AUTH", "on");

	if (!strcasecmp(v, "on"))
		return 1;
	if (!strcasecmp(v, "off"))
		return 0;
	return -1;
}

int mlc_auth_setup(char *msg, size_t cap)
{
	const char *host = mlc_config_get("MLC_HOST", "127.0.0.1");
	int on = mlc_auth_config();

	if (on < 0) {
		snprintf(msg, cap, "MLC_AUTH is '%s'; it must be on or off",
			 mlc_config_get("MLC_AUTH", ""));
		return -1;
	}
	if (!on && !mlc_host_is_loopback(host)) {
		snprintf(msg, cap, "refusing to serve with MLC_AUTH=off while nginx listens on "
			 "MLC_HOST=%s, which is not a loopback address: anyone who reaches it could "
			 "read, change and delete everything. Set MLC_AUTH=on (and make tokens with "
			 "scripts/mlc token add), or MLC_HOST=127.0.0.1", host);
		return -1;
	}
	rate_limit = mlc_config_long("MLC_RATE_LIMIT", 0);
	rate_burst = mlc_config_long("MLC_RATE_BURST", 0);
	if (rate_burst <= 0)
		rate_burst = rate_limit > 0 ? rate_limit : 1;
	if (on && rate_limit > 0 && !(rate_table = mlc_rate_table_new())) {
		snprintf(msg, cap, "cannot map the shared rate-limit table");
		return -1;
	}
	if (rate_limit < 0)
		rate_limit = 0;
	return 0;
}

/* ---- replies ---- */

static void reply_401(struct mlc_req *r, const char *error, const char *msg)
{
	if (error)
		mlc_reply_headerf(r, "WWW-Authenticate: Bearer realm=\"mlconnector\", "
				  "error=\"%s\"", error);
	else
		mlc_reply_header(r, "WWW-Authenticate: Bearer realm=\"mlconnector\"");
	mlc_error(r, 401, "%s", msg);
}

/* ---- looking a token up ---- */

static void sha256(const char *s, unsigned char out[32], char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	unsigned int len = 32;
	int i;

	EVP_Digest(s, strlen(s), out, &len, EVP_sha256(), NULL);
	for (i = 0; i < 32; i++) {
		hex[2 * i] = digits[out[i] >> 4];
		hex[2 * i + 1] = digits[out[i] & 15];
	}
	hex[64] = '\0';
}

struct lookup {
	int found;
	struct cached *c;
	long long left_us;	/* until expiry; -1 when none */
	int touch;		/* last_used_at is older than MLC_AUTH_TOUCH_S */
};

static int token_row(void *ctx, char **col, const unsigned long *len, unsigned n)
{
	struct lookup *l = ctx;

	l->found = 1;
	l->c->id = atoll(col[0]);
	snprintf(l->c->owner, sizeof(l->c->owner), "%s", col[1]);
	l->c->scope = scope_from_name(col[2]);
	l->c->state = atoi(col[3]) ? TOK_REVOKED : atoi(col[4]) ? TOK_EXPIRED : TOK_VALID;
	l->left_us = col[5] ? atoll(col[5]) : -1;
	l->touch = atoi(col[6]);
	return 1;
}

/* The cached entry for the token's hash, refreshed from the database when
 * stale; NULL with *unknown set when no such token exists, NULL with err
 * on a database failure. */
static struct cached *lookup(struct mlc_req *r, const char *token, int *unknown,
			     struct mlc_err *err)
{
	unsigned char hash[32];
	char hex[65];
	struct cached *c, fresh;
	struct lookup l = { 0, &fresh, -1, 0 };
	long long now = mono_ms(), life = MLC_AUTH_CACHE_MS;

	*unknown = 0;
	sha256(token, hash, hex);
	c = &cache[hash[0] % CACHE_SLOTS];
	if (c->used && !CRYPTO_memcmp(c->hash, hash, sizeof(hash)) && now < c->until_ms)
		return c;
	memset(&fresh, 0, sizeof(fresh));
	{
		struct mlc_param p[] = { MLC_PSTR(hex) };

		if (mlc_db_exec(r->db, "SELECT id, ownerid, scope, revoked_at IS NOT NULL, "
				"expires_at IS NOT NULL AND expires_at <= UTC_TIMESTAMP(6), "
				"TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), expires_at), "
				"last_used_at IS NULL OR last_used_at < UTC_TIMESTAMP(6) - INTERVAL "
				"60 SECOND FROM tokens WHERE token_hash = ?", p, 1, token_row, &l,
				err) < 0)
			return NULL;
	}
	if (!l.found) {
		*unknown = 1;
		return NULL;
	}
	if (l.left_us >= 0 && l.left_us / 1000 < life)
		life = l.left_us / 1000;
	memcpy(fresh.hash, hash, sizeof(hash));
	fresh.used = 1;
	fresh.until_ms = now + life;
	*c = fresh;
	if (l.touch && c->state == TOK_VALID) {
		struct mlc_param p[] = { MLC_PLONG(c->id) };
		struct mlc_err ignored = { 0, "" };

		/* Every worker may see the same stale time: the condition makes
		 * the first write win and the others change nothing. */
		if (mlc_db_exec(r->db, "UPDATE tokens SET last_used_at = UTC_TIMESTAMP(6) "
				"WHERE id = ? AND (last_used_at IS NULL OR last_used_at < "
				"UTC_TIMESTAMP(6) - INTERVAL 60 SECOND)", p, 1, NULL, NULL,
				&ignored) < 0)
			mlc_log("warn", r->request_id, "cannot record the use of token %lld: %s",
				c->id, ignored.msg);
	}
	return c;
}

/* ---- the check ---- */

int mlc_auth_check(struct mlc_req *r, int need)
{
	const char *header = FCGX_GetParam("HTTP_AUTHORIZATION", r->fcgx->envp);
	char token[MLC_TOKEN_LEN + 1];
	struct mlc_err err = { 0, "" };
	struct cached *c;
	long retry;
	int unknown;

	memset(&r->who, 0, sizeof(r->who));
	if (need == MLC_SCOPE_NONE)
		return 0;
	if (mlc_auth_config() != 1) {
		r->who.scope = MLC_SCOPE_ADMIN;
		return 0;
	}
	r->who.on = 1;
	switch (mlc_bearer_parse(header, token)) {
	case MLC_BEARER_MISSING:
		reply_401(r, NULL, "authentication required: send the header "
			  "'Authorization: Bearer <token>'");
		return -1;
	case MLC_BEARER_MALFORMED:
		reply_401(r, "invalid_token", "malformed bearer token: a token is 'mlc_' "
			  "followed by 64 hexadecimal digits");
		return -1;
	case MLC_BEARER_OK:
		break;
	}
	c = lookup(r, token, &unknown, &err);
	if (!c && !unknown) {
		mlc_reply_err(r, &err);
		return -1;
	}
	if (!c || c->state != TOK_VALID) {
		reply_401(r, "invalid_token", !c ? "invalid token: unknown" :
			  c->state == TOK_REVOKED ? "invalid token: revoked" : "invalid token: expired");
		return -1;
	}
	if (c->scope < need) {
		mlc_reply_headerf(r, "WWW-Authenticate: Bearer realm=\"mlconnector\", "
				  "error=\"insufficient_scope\", scope=\"%s\"", mlc_scope_name(need));
		mlc_error(r, 403, "this token's scope '%s' does not allow %s %s (it needs "
				 "'%s')", mlc_scope_name(c->scope), r->method, r->path,
				 mlc_scope_name(need));
		return -1;
	}
	if (rate_table && mlc_rate_take(rate_table, (uint64_t)c->id, rate_limit, rate_burst,
					mono_ns(), &retry) < 0) {
		mlc_reply_headerf(r, "Retry-After: %ld", retry);
		mlc_error(r, 429, "too many requests for this token (limit %ld per second, "
				 "bursts of %ld); retry after %ld s", rate_limit, rate_burst, retry);
		return -1;
	}
	r->who.scope = c->scope;
	r->who.token_id = c->id;
	snprintf(r->who.owner, sizeof(r->who.owner), "%s", c->owner);
	return 0;
}

/* ---- ownership ---- */

int mlc_is_admin(const struct mlc_req *r)
{
	return r->who.scope >= MLC_SCOPE_ADMIN;
}

int mlc_owns(const struct mlc_req *r, const char *owner)
{
	return mlc_is_admin(r) || (owner && !strcmp(owner, r->who.owner));
}

/* The ownerid lists are filtered by: the token's owner, or NULL for an
 * admin (everything). */
static const char *mlc_owner_filter(const struct mlc_req *r)
{
	return mlc_is_admin(r) ? NULL : r->who.owner;
}

const char *mlc_new_owner(const struct mlc_req *r)
{
	return r->who.on ? r->who.owner : "admin";
}

int mlc_body_owner(struct mlc_req *r, const char *body_owner, const char **owner)
{
	*owner = body_owner;
	if (!r->who.on)
		return 0;
	if (!body_owner) {
		*owner = r->who.owner;
		return 0;
	}
	if (!mlc_owns(r, body_owner)) {
		mlc_error(r, 403, "ownerid '%s' is not this token's owner '%s'; leave it "
				 "out, or send your own", body_owner, r->who.owner);
		return -1;
	}
	return 0;
}

void mlc_owner_params(const struct mlc_req *r, struct mlc_param *out)
{
	const char *f = mlc_owner_filter(r);

	out[0] = out[1] = f ? MLC_PSTR(f) : MLC_PNULL;
}

void mlc_reply_owned_row_or_404(struct mlc_req *r, int status, const char *sql, const char *id,
				mlc_owned_row_json to_json, const char *what)
{
	struct mlc_param p[3] = { MLC_PSTR(id) };
	struct mlc_err err = { 0, "" };
	json_object *o;

	mlc_owner_params(r, p + 1);
	if (mlc_load_row(r, sql, p, 3, to_json, &o, &err) < 0)
		mlc_reply_err(r, &err);
	else if (!o)
		mlc_error(r, 404, "%s '%s' not found", what, id);
	else
		mlc_reply_json(r, status, o);
}
