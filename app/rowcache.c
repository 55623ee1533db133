/*
 * rowcache.c - see rowcache.h.
 */
#include <stdint.h>
#include <stdio.h>
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

/* One cache: the models' (MLC_MODEL_CACHE) or the operations'
 * (MLC_OPERATION_CACHE). */
struct cache {
	const char *key;		/* its configuration key */
	long def_kib;			/* and that key's default */
	struct entry *slots;
	size_t nslots, used, bound;
	int configured;
	unsigned long long hits, misses, clock;
};

static struct cache models = { .key = "MLC_MODEL_CACHE", .def_kib = 8192 };
static struct cache operations = { .key = "MLC_OPERATION_CACHE", .def_kib = 4096 };

static void configure(struct cache *c)
{
	long kib = mlc_config_long(c->key, c->def_kib);

	c->configured = 1;
	if (kib <= 0)
		return;
	if (kib > 16L * 1024 * 1024)
		kib = 16L * 1024 * 1024;
	c->bound = (size_t)kib * 1024;
	c->nslots = c->bound / BYTES_PER_SLOT / WAYS * WAYS;
	if (c->nslots < 2 * WAYS)
		c->nslots = 2 * WAYS;
	c->slots = mlc_xcalloc(c->nslots, sizeof(*c->slots));
}

static int cache_on(struct cache *c)
{
	if (!c->configured)
		configure(c);
	return c->slots != NULL;
}

/* The first entry of the set of id (FNV-1a over the id). */
static struct entry *set_of(struct cache *c, const char *id)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *id; id++) {
		h ^= (unsigned char)*id;
		h *= 1099511628211ULL;
	}
	return &c->slots[h % (c->nslots / WAYS) * WAYS];
}

static struct entry *find(struct entry *set, const char *id)
{
	int i;

	for (i = 0; i < WAYS; i++)
		if (set[i].text && !strcmp(set[i].id, id))
			return &set[i];
	return NULL;
}

static const char *cache_get(struct cache *c, const char *id, unsigned long long seq,
			     unsigned long long version, size_t *len)
{
	struct entry *e;

	if (!cache_on(c) || strlen(id) >= sizeof(e->id))
		return NULL;
	e = find(set_of(c, id), id);
	if (!e || e->seq != seq || e->version != version) {
		c->misses++;
		return NULL;
	}
	c->hits++;
	e->used_at = ++c->clock;
	*len = e->len;
	return e->text;
}

static void cache_put(struct cache *c, const char *id, unsigned long long seq,
		      unsigned long long version, const char *text, size_t len)
{
	struct entry *set, *e;
	int i;

	if (!cache_on(c) || strlen(id) >= sizeof(e->id) || len > ENTRY_MAX)
		return;
	set = set_of(c, id);
	if (!(e = find(set, id))) {
		/* An empty slot, else the least recently used. */
		e = &set[0];
		for (i = 0; i < WAYS && e->text; i++)
			if (!set[i].text || set[i].used_at < e->used_at)
				e = &set[i];
	}
	if (e->text) {
		c->used -= e->len;
		free(e->text);
		e->text = NULL;
	}
	if (c->used + len > c->bound)
		return;
	e->text = mlc_xmalloc(len + 1);
	memcpy(e->text, text, len);
	e->text[len] = '\0';
	e->len = len;
	e->seq = seq;
	e->version = version;
	e->used_at = ++c->clock;
	memcpy(e->id, id, strlen(id) + 1);
	c->used += len;
}

static void cache_release(struct cache *c)
{
	size_t i;

	for (i = 0; i < c->nslots; i++)
		free(c->slots[i].text);
	free(c->slots);
	c->slots = NULL;
	c->nslots = c->used = c->bound = 0;
	c->configured = 0;
	c->hits = c->misses = c->clock = 0;
}

/* ---- models ---- */

int mlc_rowcache_on(void)
{
	return cache_on(&models);
}

const char *mlc_rowcache_get(const char *id, unsigned long long seq,
			     unsigned long long version, size_t *len)
{
	return cache_get(&models, id, seq, version, len);
}

void mlc_rowcache_put(const char *id, unsigned long long seq, unsigned long long version,
		      const char *text, size_t len)
{
	cache_put(&models, id, seq, version, text, len);
}

void mlc_rowcache_stats(unsigned long long *h, unsigned long long *m)
{
	*h = models.hits;
	*m = models.misses;
}

void mlc_rowcache_release(void)
{
	cache_release(&models);
}

/* ---- operations: keyed by operationid (its seq too) and row_version ---- */

int mlc_opcache_on(void)
{
	return cache_on(&operations);
}

const char *mlc_opcache_get(unsigned long long operationid, unsigned long long version,
			    size_t *len)
{
	char id[24];

	snprintf(id, sizeof(id), "%llu", operationid);
	return cache_get(&operations, id, operationid, version, len);
}

void mlc_opcache_put(unsigned long long operationid, unsigned long long version,
		     const char *text, size_t len)
{
	char id[24];

	snprintf(id, sizeof(id), "%llu", operationid);
	cache_put(&operations, id, operationid, version, text, len);
}

void mlc_opcache_stats(unsigned long long *h, unsigned long long *m)
{
	*h = operations.hits;
	*m = operations.misses;
}

void mlc_opcache_release(void)
{
	cache_release(&operations);
}
