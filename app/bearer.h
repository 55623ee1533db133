/*
 * bearer.h - the pieces of authentication that touch no database: reading
 * an Authorization header, the shape of a token, whether an address is
 * loopback, and the per-token rate limit kept in memory shared by every
 * worker.  auth.c puts them together.
 */
#ifndef MLC_BEARER_H
#define MLC_BEARER_H

#include <stddef.h>
#include <stdint.h>

/* Tokens are "mlc_" and 64 lowercase hex digits (32 random bytes). */
#define MLC_TOKEN_PREFIX "mlc_"
#define MLC_TOKEN_LEN 68

enum mlc_bearer_rc {
	MLC_BEARER_OK = 0,
	MLC_BEARER_MISSING,	/* no header, or another scheme (Basic, ...) */
	MLC_BEARER_MALFORMED,	/* "Bearer" with no token, or not a token's shape */
};

/*
 * Find the token in an Authorization header value (NULL when absent):
 * the scheme "Bearer" in any case, one or more spaces, the token, and
 * optional trailing spaces.  On MLC_BEARER_OK, token[] holds it
 * NUL-terminated.
 */
enum mlc_bearer_rc mlc_bearer_parse(const char *header, char token[MLC_TOKEN_LEN + 1]);

/* Does s have the shape of a token? */
int mlc_token_well_formed(const char *s);

/* Is host (as nginx's listen directive takes it: "127.0.0.1", "[::1]",
 * "localhost", ...) a loopback address only? */
int mlc_host_is_loopback(const char *host);

/*
 * The rate limit: a generic cell rate algorithm (a token bucket kept as
 * one "theoretical arrival time" per token) over a fixed table in shared
 * memory, mapped by the master before it forks.  Slots are found by
 * hashing the token id with a short linear probe; a full neighbourhood
 * gives the stalest slot to the newcomer.  Updates are single
 * compare-and-swap operations: no lock is ever held.
 */
#define MLC_RATE_SLOTS 4096
#define MLC_RATE_PROBE 8

struct mlc_rate_slot {
	uint64_t id;		/* token id; 0 = free */
	int64_t tat;		/* theoretical arrival time, ns of CLOCK_MONOTONIC */
};

/* A table of MLC_RATE_SLOTS slots in MAP_SHARED anonymous memory (shared
 * with processes forked later), or NULL when mmap fails. */
struct mlc_rate_slot *mlc_rate_table_new(void);

/*
 * Account one request of token id at time now_ns, allowing rate requests
 * per second with bursts of burst.  Returns 0 when allowed; -1 when over
 * the limit, with *retry_after_s the whole seconds (>= 1) until one is.
 */
int mlc_rate_take(struct mlc_rate_slot *table, uint64_t id, long rate, long burst,
		  int64_t now_ns, long *retry_after_s);

#endif
