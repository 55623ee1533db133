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

struct entry {
	char id[37];
	unsigned long long seq, version;
	char *text;
	size_t len;
};

static struct entry *slots;
static size_t nslots, used, bound;
static int configured;
static unsigned long long hits, misses;

static void configure(void)
{
	long kib = mlc_config_long("MLC_MODEL_CACHE", 8192);

	configured = 1;
	if (kib <= 0)
		return;
	if (kib > 16L * 1024 * 1024)
		kib = 16L * 1024 * 1024;
	bound = (size_t)kib * 1024;
	nslots = bound / BYTES_PER_SLOT;
	if (nslots < 16)
		nslots = 16;
	slots = mlc_xcalloc(nslots, sizeof(*slots));
}

int mlc_rowcache_on(void)
{
	if (!configured)
		configure();
	return slots != NULL;
}

/* FNV-1a over the id. */
static struct entry *slot_of(const char *id)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *id; id++) {
		h ^= (unsigned char)*id;
		h *= 1099511628211ULL;
	}
	return &slots[h % nslots];
}

const char *mlc_rowcache_get(const char *id, unsigned long long seq,
			     unsigned long long version, size_t *len)
{
	struct entry *e;

	if (!mlc_rowcache_on() || strlen(id) >= sizeof(e->id))
		return NULL;
	e = slot_of(id);
	if (!e->text || e->seq != seq || e->version != version || strcmp(e->id, id)) {
		misses++;
		return NULL;
	}
	hits++;
	*len = e->len;
	return e->text;
}

void mlc_rowcache_put(const char *id, unsigned long long seq, unsigned long long version,
		      const char *text, size_t len)
{
	struct entry *e;

	if (!mlc_rowcache_on() || strlen(id) >= sizeof(e->id) || len > ENTRY_MAX)
		return;
	e = slot_of(id);
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
	hits = misses = 0;
}
