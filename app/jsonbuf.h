/*
 * jsonbuf.h - JSON text written straight into a growing buffer, for the
 * rows the hot read routes send (models, operations).
 *
 * Building a json-c object per row and printing it cost more than the
 * database query itself on a 100-row page (allocations of every node, a
 * hash table per object): these writers produce the same bytes json-c
 * printed (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE) with
 * one buffer that a worker keeps from request to request.
 * t/unit/test-jsonbuf.c checks them against json-c byte for byte.
 */
#ifndef MLC_JSONBUF_H
#define MLC_JSONBUF_H

#include <stddef.h>

struct mlc_jbuf {
	char *s;
	size_t len, cap;
};

/* Empty the buffer; a buffer grown past a few hundred KiB for one large
 * reply is given back, so that it does not stay with the worker. */
void mlc_jbuf_reset(struct mlc_jbuf *b);
void mlc_jbuf_free(struct mlc_jbuf *b);

void mlc_jbuf_put(struct mlc_jbuf *b, const char *s, size_t n);
#define mlc_jbuf_lit(b, lit) mlc_jbuf_put((b), (lit), sizeof(lit) - 1)

/* s (NUL-terminated) as a JSON string, escaped as json-c escapes it; NULL
 * gives null. */
void mlc_jbuf_str(struct mlc_jbuf *b, const char *s);

/* JSON text this service stored after validating it, unchanged (as
 * mlc_json_raw); NULL gives null. */
void mlc_jbuf_raw(struct mlc_jbuf *b, const char *s);

/* A DATETIME(6) value as the ISO 8601 string mlc_iso_time makes of it;
 * NULL gives null. */
void mlc_jbuf_time(struct mlc_jbuf *b, const char *dt);

#endif
