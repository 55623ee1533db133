/*
 * rowcache.c - see rowcache.h.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "mlc.h"
#include "rowcache.h"

/* One slot per this many bytes of the bound: a model is about 700 bytes. */
#define BYTES_PER_SLOT 512
/* A single model's text above this is not kept (it is read each time). */
#define ENTRY_MAX (64 * 1024)
/* Entries per set: a model may sit in any slot of the set its id hashes
 * to, and a new one replaces the set's least recently used.  (With one
 * slot per id, two models of one page that hash alike would evict each
 * other on every read of it.) */
#define WAYS 8

struct entry {
	char id[37];
	unsigned long long seq, version;
	unsigned long long used_at;	/* clock of the last lookup or put */
	char *text;
	size_t len;
};

static struct entry *slots;
static size_t nslots, used, bound;
static int configured;
static unsigned long long hits, misses, clock;

static void configure(void)
{
	long kib = mlc_config_long("MLC_MODEL_CACHE", 8192);

	configured = 1;
	if (kib <= 0)
		return;
	if (kib > 16L * 1024 * 1024)
		kib = 16L * 1024 * 1024;
	bound = (size_t)kib * 1024;
	nslots = bound / BYTES_PER_SLOT / WAYS * WAYS;
	if (nslots < 2 * WAYS)
		nslots = 2 * WAYS;
	slots = mlc_xcalloc(nslots, sizeof(*slots));
}

int mlc_rowcache_on(void)
{
	if (!configured)
		configure();
	return slots != NULL;
}

/* The first entry of the set of id (FNV-1a over the id). */
static struct entry *set_of(const char *id)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *id; id++) {
		h ^= (unsigned char)*id;
		h *= 1099511628211ULL;
	}
	return &slots[h % (nslots / WAYS) * WAYS];
}

static struct entry *find(struct entry *set, const char *id)
{
	int i;

	for (i = 0; i < WAYS; i++)
		if (set[i].text && !strcmp(set[i].id, id))
			return &set[i];
	return NULL;
}

const char *mlc_rowcache_get(const char *id, unsigned long long seq,
			     unsigned long long version, size_t *len)
{
	struct entry *e;

	if (!mlc_rowcache_on() || strlen(id) >= sizeof(e->id))
		return NULL;
	e = find(set_of(id), id);
	if (!e || e->seq != seq || e->version != version) {
		misses++;
		return NULL;
	}
	hits++;
	e->used_at = ++clock;
	*len = e->len;
	return e->text;
}

void mlc_rowcache_put(const char *id, unsigned long long seq, unsigned long long version,
		      const char *text, size_t len)
{
	struct entry *set, *e;
	int i;

	if (!mlc_rowcache_on() || strlen(id) >= sizeof(e->id) || len > ENTRY_MAX)
		return;
	set = set_of(id);
	if (!(e = find(set, id))) {
		/* An empty slot, else the least recently used. */
		e = &set[0];
		for (i = 0; i < WAYS && e->text; i++)
			if (!set[i].text || set[i].used_at < e->used_at)
				e = &set[i];
	}
	if (e->text) {
		used -= e->len;
		free(e->text);
		e->text = NULL;
	}
	if (used + len > bound)
		return;
	e->text = mlc_xmalloc(len + 1);
	memcpy(e->text, text, len);
	e->text[len] = '\0';
	e->len = len;
	e->seq = seq;
	e->version = version;
	e->used_at = ++clock;
	memcpy(e->id, id, strlen(id) + 1);
	used += len;
}

void mlc_rowcache_stats(unsigned long long *h, unsigned long long *m)
{
	*h = hits;
	*m = misses;
}

void mlc_rowcache_release(void)
{
	size_t i;

	for (i = 0; i < nslots; i++)
		free(slots[i].text);
	free(slots);
	slots = NULL;
	nslots = used = bound = 0;
	configured = 0;
	hits = misses = clock = 0;
}
