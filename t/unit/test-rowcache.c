/*
 * test-rowcache.c - the workers' cache of models as JSON: an entry is
 * found only at the seq and version it was made for, models that hash
 * alike do not evict each other while a set has room, the least recently
 * used goes first, and the byte bound holds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rowcache.h"
#include "tap.h"

static const char *get(const char *id, unsigned long long seq, unsigned long long v)
{
	size_t len;

	return mlc_rowcache_get(id, seq, v, &len);
}

int main(void)
{
	char id[40], text[100];
	const char *got;
	int i, found = 0;
	unsigned long long h, m;
	size_t len;

	setenv("MLC_MODEL_CACHE", "0", 1);
	ok(!mlc_rowcache_on(), "MLC_MODEL_CACHE=0: no cache");
	mlc_rowcache_put("a", 1, 0, "{}", 2);
	ok(!get("a", 1, 0), "and nothing is kept");
	mlc_rowcache_release();

	setenv("MLC_MODEL_CACHE", "64", 1);	/* 64 KiB: 128 slots */
	ok(mlc_rowcache_on(), "MLC_MODEL_CACHE=64: a cache");
	mlc_rowcache_put("model-1", 7, 0, "{\"v\":0}", 7);
	got = get("model-1", 7, 0);
	ok(got && !strcmp(got, "{\"v\":0}"), "an entry is found at its seq and version");
	ok(!get("model-1", 7, 1), "not at another version");
	ok(!get("model-1", 8, 0), "nor at another seq (the id deleted and added again)");
	ok(!get("model-2", 7, 0), "nor under another id");
	mlc_rowcache_put("model-1", 7, 1, "{\"v\":1}", 7);
	got = get("model-1", 7, 1);
	ok(got && !strcmp(got, "{\"v\":1}") && !get("model-1", 7, 0),
	   "a newer version replaces the entry of the same id");

	/* 100 models in 128 slots: nearly all stay (sets of 8 hold the
	 * collisions a one-slot table would thrash on). */
	for (i = 0; i < 100; i++) {
		snprintf(id, sizeof(id), "%08d-0000-4000-8000-000000000000", i);
		snprintf(text, sizeof(text), "{\"n\":%d}", i);
		mlc_rowcache_put(id, (unsigned long long)i + 1, 0, text, strlen(text));
	}
	for (i = 0; i < 100; i++) {
		snprintf(id, sizeof(id), "%08d-0000-4000-8000-000000000000", i);
		snprintf(text, sizeof(text), "{\"n\":%d}", i);
		got = get(id, (unsigned long long)i + 1, 0);
		found += got && !strcmp(got, text);
	}
	ok(found >= 90, "100 models in 128 slots: %d of them are found with their own text", found);
	mlc_rowcache_stats(&h, &m);
	ok(h >= 90 && m >= 1, "hits and misses are counted (%llu, %llu)", h, m);

	/* The byte bound: 64 KiB of 60 KiB texts holds one. */
	mlc_rowcache_release();
	{
		size_t big = 60 * 1024;
		char *b = malloc(big);

		memset(b, 'x', big);
		mlc_rowcache_put("big-1", 1, 0, b, big);
		mlc_rowcache_put("big-2", 2, 0, b, big);
		ok(get("big-1", 1, 0) && !get("big-2", 2, 0),
		   "an entry that would pass MLC_MODEL_CACHE is not kept");
		mlc_rowcache_put("huge", 3, 0, b, big);
		free(b);
	}
	mlc_rowcache_release();

	/* Operations: their own cache and bound, keyed by operationid and
	 * row_version. */
	setenv("MLC_OPERATION_CACHE", "0", 1);
	ok(!mlc_opcache_on(), "MLC_OPERATION_CACHE=0: no cache of operations");
	mlc_opcache_put(5, 1, "{}", 2);
	ok(!mlc_opcache_get(5, 1, &len), "and nothing is kept");
	mlc_opcache_release();
	setenv("MLC_OPERATION_CACHE", "64", 1);
	setenv("MLC_MODEL_CACHE", "0", 1);
	ok(mlc_opcache_on() && !mlc_rowcache_on(),
	   "MLC_OPERATION_CACHE=64 with MLC_MODEL_CACHE=0: operations only");
	mlc_opcache_put(5, 100, "{\"op\":5}", 8);
	mlc_opcache_put(50, 100, "{\"op\":50}", 9);
	got = mlc_opcache_get(5, 100, &len);
	ok(got && len == 8 && !strcmp(got, "{\"op\":5}"), "an operation is found by its id and version");
	got = mlc_opcache_get(50, 100, &len);
	ok(got && len == 9 && !strcmp(got, "{\"op\":50}"), "and another beside it");
	ok(!mlc_opcache_get(6, 100, &len) && !mlc_opcache_get(500, 100, &len),
	   "other ids are not found");
	ok(!mlc_opcache_get(5, 101, &len), "nor a kept id at another version (changed since)");
	mlc_opcache_put(5, 101, "{\"op\":\"5b\"}", 11);
	got = mlc_opcache_get(5, 101, &len);
	ok(got && len == 11 && !mlc_opcache_get(5, 100, &len),
	   "the changed row replaces the old one, which is no longer served");
	mlc_opcache_stats(&h, &m);
	ok(h == 3 && m == 4, "its hits and misses are its own (%llu, %llu)", h, m);
	ok(!get("5", 5, 0), "the models' cache does not see operations");
	mlc_opcache_release();
	return done_testing();
}
