/*
 * bearer.c - Authorization header, token shape, loopback addresses and
 * the shared rate-limit table (see bearer.h).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>

#include "bearer.h"

static int is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

int mlc_token_well_formed(const char *s)
{
	size_t i, n = strlen(MLC_TOKEN_PREFIX);

	if (strncmp(s, MLC_TOKEN_PREFIX, n))
		return 0;
	for (i = n; i < MLC_TOKEN_LEN; i++)
		if (!is_lower_hex(s[i]))
			return 0;
	return s[MLC_TOKEN_LEN] == '\0';
}

enum mlc_bearer_rc mlc_bearer_parse(const char *h, char token[MLC_TOKEN_LEN + 1])
{
	const char *start, *end;
	size_t len;

	token[0] = '\0';
	if (!h)
		return MLC_BEARER_MISSING;
	while (*h == ' ' || *h == '\t')
		h++;
	if (strncasecmp(h, "Bearer", 6) || (h[6] != ' ' && h[6] != '\t' && h[6] != '\0'))
		return MLC_BEARER_MISSING;
	start = h + 6;
	while (*start == ' ' || *start == '\t')
		start++;
	end = start;
	while (*end && *end != ' ' && *end != '\t')
		end++;
	len = (size_t)(end - start);
	while (*end == ' ' || *end == '\t')
		end++;
	if (*end || len != MLC_TOKEN_LEN)
		return MLC_BEARER_MALFORMED;
	memcpy(token, start, len);
	token[len] = '\0';
	if (!mlc_token_well_formed(token)) {
		token[0] = '\0';
		return MLC_BEARER_MALFORMED;
	}
	return MLC_BEARER_OK;
}

int mlc_host_is_loopback(const char *host)
{
	char buf[INET6_ADDRSTRLEN + 2];
	struct in6_addr a6;
	struct in_addr a4;
	size_t n;

	if (!host)
		return 0;
	if (!strcasecmp(host, "localhost"))
		return 1;
	n = strlen(host);
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof(buf)) {
		memcpy(buf, host + 1, n - 2);
		buf[n - 2] = '\0';
		host = buf;
	}
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1) {
		if (IN6_IS_ADDR_V4MAPPED(&a6))
			return a6.s6_addr[12] == 127;
		return IN6_IS_ADDR_LOOPBACK(&a6);
	}
	return 0;
}

/* ---- rate limit ---- */

struct mlc_rate_slot *mlc_rate_table_new(void)
{
	void *p = mmap(NULL, MLC_RATE_SLOTS * sizeof(struct mlc_rate_slot),
		       PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static struct mlc_rate_slot *find_slot(struct mlc_rate_slot *t, uint64_t id)
{
	uint64_t h = (id * 0x9E3779B97F4A7C15ULL) >> 52;	/* 12 bits: MLC_RATE_SLOTS */
	struct mlc_rate_slot *stalest = NULL;
	int64_t stalest_tat = 0;
	unsigned i;

	for (i = 0; i < MLC_RATE_PROBE; i++) {
		struct mlc_rate_slot *s = &t[(h + i) % MLC_RATE_SLOTS];
		uint64_t cur = __atomic_load_n(&s->id, __ATOMIC_ACQUIRE), free_id = 0;
		int64_t tat;

		if (cur == id)
			return s;
		if (cur == 0) {
			if (__atomic_compare_exchange_n(&s->id, &free_id, id, 0, __ATOMIC_ACQ_REL,
							__ATOMIC_ACQUIRE) || free_id == id)
				return s;
			continue;
		}
		tat = __atomic_load_n(&s->tat, __ATOMIC_RELAXED);
		if (!stalest || tat < stalest_tat) {
			stalest = s;
			stalest_tat = tat;
		}
	}
	/* The neighbourhood is full: the slot that would have been allowed the
	 * longest ago changes hands (its old owner starts again with a full
	 * bucket if it comes back; a race here at worst does the same). */
	__atomic_store_n(&stalest->id, id, __ATOMIC_RELEASE);
	__atomic_store_n(&stalest->tat, 0, __ATOMIC_RELEASE);
	return stalest;
}

int mlc_rate_take(struct mlc_rate_slot *table, uint64_t id, long rate, long burst,
		  int64_t now_ns, long *retry_after_s)
{
	struct mlc_rate_slot *s;
	int64_t interval, limit, old, base, next, wait;

	if (!table || rate <= 0)
		return 0;
	if (burst < 1)
		burst = 1;
	interval = 1000000000LL / rate;
	if (interval < 1)
		interval = 1;
	limit = interval * burst;
	s = find_slot(table, id);
	old = __atomic_load_n(&s->tat, __ATOMIC_ACQUIRE);
	for (;;) {
		base = old > now_ns ? old : now_ns;
		next = base + interval;
		if (next - now_ns > limit) {
			wait = next - now_ns - limit;
			*retry_after_s = (long)((wait + 999999999LL) / 1000000000LL);
			if (*retry_after_s < 1)
				*retry_after_s = 1;
			return -1;
		}
		if (__atomic_compare_exchange_n(&s->tat, &old, next, 1, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			return 0;
	}
}
