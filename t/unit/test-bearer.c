/*
 * test-bearer.c - the Authorization header, token shapes, loopback
 * addresses and the shared rate-limit table.
 */
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bearer.h"
#include "tap.h"

#define TOK "mlc_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void parses(const char *h, const char *want)
{
	char tok[MLC_TOKEN_LEN + 1];
	enum mlc_bearer_rc rc = mlc_bearer_parse(h, tok);

	ok(rc == MLC_BEARER_OK && !strcmp(tok, want), "'%.40s...' gives the token (rc %d)", h, rc);
}

static void refused(const char *h, enum mlc_bearer_rc want, const char *why)
{
	char tok[MLC_TOKEN_LEN + 1] = "x";
	enum mlc_bearer_rc rc = mlc_bearer_parse(h, tok);

	ok(rc == want && tok[0] == '\0', "%s: rc %d, no token (got rc %d)", why, want, rc);
}

int main(void)
{
	struct mlc_rate_slot *t;
	long retry = 0;
	int64_t now = 1000000000000LL, s = 1000000000LL;
	int i, allowed;
	pid_t pid;
	char buf[200];

	parses("Bearer " TOK, TOK);
	parses("bearer " TOK, TOK);
	parses("BEARER   " TOK "  ", TOK);
	parses("  Bearer\t" TOK, TOK);
	refused(NULL, MLC_BEARER_MISSING, "no header");
	refused("", MLC_BEARER_MISSING, "an empty header");
	refused("Basic dXNlcjpwYXNz", MLC_BEARER_MISSING, "another scheme");
	refused("Bearer" TOK, MLC_BEARER_MISSING, "no space after the scheme");
	refused("Bearer", MLC_BEARER_MALFORMED, "the scheme alone");
	refused("Bearer   ", MLC_BEARER_MALFORMED, "the scheme and spaces");
	refused("Bearer " TOK "0", MLC_BEARER_MALFORMED, "one digit too many");
	refused("Bearer mlc_0123", MLC_BEARER_MALFORMED, "too short");
	refused("Bearer " TOK " extra", MLC_BEARER_MALFORMED, "a second word");
	refused("Bearer MLC_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		MLC_BEARER_MALFORMED, "an upper-case prefix");
	refused("Bearer mlc_0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
		MLC_BEARER_MALFORMED, "upper-case hex");
	refused("Bearer xyz_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		MLC_BEARER_MALFORMED, "another prefix");
	refused("Bearer ' OR '1'='1' --                                           x",
		MLC_BEARER_MALFORMED, "SQL in the token");
	memcpy(buf, "Bearer " TOK, sizeof("Bearer " TOK));
	buf[30] = '\x80';
	refused(buf, MLC_BEARER_MALFORMED, "a non-ASCII byte in the token");

	ok(mlc_token_well_formed(TOK), "a token's shape");
	ok(!mlc_token_well_formed(""), "the empty string is not a token");

	ok(mlc_host_is_loopback("127.0.0.1"), "127.0.0.1 is loopback");
	ok(mlc_host_is_loopback("127.1.2.3"), "127.1.2.3 is loopback");
	ok(mlc_host_is_loopback("::1"), "::1 is loopback");
	ok(mlc_host_is_loopback("[::1]"), "[::1] is loopback");
	ok(mlc_host_is_loopback("localhost"), "localhost is loopback");
	ok(mlc_host_is_loopback("::ffff:127.0.0.1"), "::ffff:127.0.0.1 is loopback");
	ok(!mlc_host_is_loopback("0.0.0.0"), "0.0.0.0 is not loopback");
	ok(!mlc_host_is_loopback("::"), ":: is not loopback");
	ok(!mlc_host_is_loopback("[::]"), "[::] is not loopback");
	ok(!mlc_host_is_loopback("10.0.0.1"), "10.0.0.1 is not loopback");
	ok(!mlc_host_is_loopback("*"), "* is not loopback");
	ok(!mlc_host_is_loopback(""), "an empty host is not loopback");
	ok(!mlc_host_is_loopback("localhost.example.org"), "a name beginning localhost is not");
	ok(!mlc_host_is_loopback(NULL), "no host is not loopback");

	t = mlc_rate_table_new();
	ok(t != NULL, "the rate table is mapped");
	/* 2 per second, bursts of 3: three at once, then one every 0.5 s. */
	for (i = 0, allowed = 0; i < 10; i++)
		allowed += mlc_rate_take(t, 7, 2, 3, now, &retry) == 0;
	is_int(allowed, 3, "a burst of 3 passes, the rest is refused");
	is_int(retry, 1, "Retry-After rounds up to whole seconds (at least 1)");
	ok(mlc_rate_take(t, 7, 2, 3, now + s / 2, &retry) == 0, "half a second later one more passes");
	ok(mlc_rate_take(t, 7, 2, 3, now + s / 2, &retry) < 0, "but only one");
	ok(mlc_rate_take(t, 8, 2, 3, now, &retry) == 0, "another token has its own bucket");
	ok(mlc_rate_take(t, 7, 2, 3, now + 10 * s, &retry) == 0, "after a pause the bucket is full");
	for (i = 0, allowed = 0; i < 10; i++)
		allowed += mlc_rate_take(t, 9, 1, 1, now, &retry) == 0;
	is_int(allowed, 1, "a rate of 1 with a burst of 1 lets one through");
	for (i = 0; i < 5; i++)
		mlc_rate_take(t, 10, 1, 1, now, &retry);
	ok(retry >= 1, "Retry-After is positive (%ld)", retry);
	is_int(mlc_rate_take(t, 11, 0, 0, now, &retry), 0, "rate 0 is no limit");

	/* The table is shared with a forked process: what the child takes,
	 * the parent no longer has. */
	pid = fork();
	if (pid == 0) {
		for (i = 0; i < 3; i++)
			mlc_rate_take(t, 12, 1, 3, now, &retry);
		_exit(0);
	}
	waitpid(pid, NULL, 0);
	ok(mlc_rate_take(t, 12, 1, 3, now, &retry) < 0,
	   "a burst used by a forked worker counts for the others");

	/* Many more tokens than slots: every one is still limited once it
	 * has a slot, and the table never hands out a slot twice at once. */
	for (i = 1; i <= 3 * MLC_RATE_SLOTS; i++)
		mlc_rate_take(t, 100000 + (uint64_t)i, 1, 1, now, &retry);
	ok(mlc_rate_take(t, 100000 + 3 * MLC_RATE_SLOTS, 1, 1, now, &retry) < 0,
	   "with a full table the newest token is still limited");
	return done_testing();
}
