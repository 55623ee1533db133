/*
 * rowcache.h - a worker's cache of models already written as JSON text,
 * each kept with the seq and row_version its row had (sql/018), and one of
 * operations (below).
 *
 * An entry is only ever served after the database said, in the same
 * request, that the row still has that seq and version: the cache saves
 * reading and writing the row's columns, never the question to the
 * database, so it is as current as the database is to every API host
 * (docs/SCALING.md, "Caches and several API hosts").
 *
 * Bounded by MLC_MODEL_CACHE KiB of text per worker (0: no cache).  A
 * model's id hashes to a set of 8 slots; a new entry takes a free slot of
 * the set or replaces its least recently used one.
 */
#ifndef MLC_ROWCACHE_H
#define MLC_ROWCACHE_H

#include <stddef.h>

/* Whether the cache is on (MLC_MODEL_CACHE > 0). */
int mlc_rowcache_on(void);

/* The text of model id at (seq, version), or NULL. */
const char *mlc_rowcache_get(const char *id, unsigned long long seq,
			     unsigned long long version, size_t *len);

/* Keep text for model id at (seq, version); too large a text, or one that
 * would pass the bound, is not kept. */
void mlc_rowcache_put(const char *id, unsigned long long seq, unsigned long long version,
		      const char *text, size_t len);

/* Counters for tests and the bench: lookups that hit and that missed. */
void mlc_rowcache_stats(unsigned long long *hits, unsigned long long *misses);

/* Drop every entry and the table (tests; a worker keeps its cache). */
void mlc_rowcache_release(void);

/*
 * The same for operations (GET /deployment/get/opos/{ownerid}), bounded by
 * MLC_OPERATION_CACHE KiB per worker (0: none): an entry is the text of
 * operationid at row_version version (sql/021), served only for an id and
 * version the database has just listed for the page, so a deleted
 * operation is never shown and one changed at the console is read again.
 */
int mlc_opcache_on(void);
const char *mlc_opcache_get(unsigned long long operationid, unsigned long long version,
			    size_t *len);
void mlc_opcache_put(unsigned long long operationid, unsigned long long version,
		     const char *text, size_t len);
void mlc_opcache_stats(unsigned long long *hits, unsigned long long *misses);
void mlc_opcache_release(void);

#endif
