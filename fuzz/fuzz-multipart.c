/*
 * fuzz-multipart.c - libFuzzer target for the multipart/form-data parser
 * and mlc_mp_boundary.
 *
 * Input layout, so that the fuzzer also chooses the boundary and how the
 * body is cut into pieces:
 *
 *	byte 0		bits 0-5: boundary length - 1 (1..64 bytes)
 *			bits 6-7: stop in the Nth part_begin/part_end (0: never)
 *	bytes 1..len	the boundary (a NUL shortens it; empty is refused)
 *	next byte	seed for the piece sizes
 *	the rest	the body
 *
 * The body is parsed once whole and once in pieces of pseudo-random
 * sizes (with empty feeds in between); both must report the same parts,
 * data, result and message, or the target aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pieces.h"

#include "multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What a parse did: one running hash over the events and data bytes, so
 * that how the data was cut into part_data calls does not matter. */
struct trace {
	uint64_t hash;
	unsigned marks;		/* part_begin and part_end calls so far */
	unsigned stop_at;	/* stop in this mark, 0 never */
};

static void mix(struct trace *t, unsigned v)
{
	t->hash = (t->hash ^ v) * 0x100000001b3ULL;
}

static void mix_str(struct trace *t, const char *s, size_t cap)
{
	size_t n = strnlen(s, cap);

	if (n == cap)
		abort();	/* not terminated within its buffer */
	for (size_t i = 0; i < n; i++)
		mix(t, (unsigned char)s[i]);
	mix(t, 0x100);
}

static int mark(struct trace *t, unsigned v)
{
	mix(t, v);
	return ++t->marks == t->stop_at;
}

static int on_begin(void *ctx, const struct mlc_mp_part *part)
{
	struct trace *t = ctx;

	if (!part->name[0])
		abort();	/* the parser promises a name */
	mix_str(t, part->name, sizeof(part->name));
	mix_str(t, part->filename, sizeof(part->filename));
	mix_str(t, part->content_type, sizeof(part->content_type));
	mix(t, part->has_filename ? 0x201 : 0x202);
	return mark(t, 0x300);
}

static int on_data(void *ctx, const char *d, size_t len)
{
	struct trace *t = ctx;

	if (!len)
		abort();	/* empty calls are promised not to happen */
	for (size_t i = 0; i < len; i++)
		mix(t, (unsigned char)d[i]);
	return 0;
}

static int on_end(void *ctx)
{
	return mark(ctx, 0x400);
}

static const struct mlc_mp_callbacks cb = { on_begin, on_data, on_end };

struct outcome {
	int rc;
	uint64_t hash;
	char msg[256];
};

/* Parse body; piece sizes come from seed, or none (whole) when seed < 0. */
static void parse(const char *boundary, const char *body, size_t len, int seed,
		  unsigned stop_at, struct outcome *out)
{
	struct trace t = { 0xcbf29ce484222325ULL, 0, stop_at };
	struct mlc_mp *p = mlc_mp_new(boundary, &cb, &t);
	struct pieces cut;
	size_t off = 0;
	int rc = 0;

	pieces_init(&cut, seed);
	while (!rc && off < len) {
		size_t n = pieces_next(&cut, len - off);

		rc = mlc_mp_feed(p, body + off, n);
		off += n;
	}
	out->rc = rc ? rc : mlc_mp_finish(p);
	if (mlc_mp_feed(p, "x", 1) != out->rc || mlc_mp_finish(p) != out->rc)
		abort();	/* results must be sticky */
	out->hash = t.hash;
	strncpy(out->msg, mlc_mp_error(p), sizeof(out->msg) - 1);
	out->msg[sizeof(out->msg) - 1] = '\0';
	mlc_mp_free(p);
}

/* mlc_mp_boundary on the input as text: anything it accepts must be a
 * boundary RFC 2046 allows. */
static void check_content_type(const uint8_t *data, size_t size)
{
	char *ct = malloc(size + 1);
	char b[MLC_MP_MAX_BOUNDARY + 1], msg[128];

	memcpy(ct, data, size);
	ct[size] = '\0';
	if (mlc_mp_boundary(ct, b, sizeof(b), msg, sizeof(msg)) == 0) {
		size_t n = strlen(b);

		if (!n || n > MLC_MP_MAX_BOUNDARY || b[n - 1] == ' ' ||
		    strspn(b, "0123456789abcdefghijklmnopqrstuvwxyz"
			      "ABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? ") != n)
			abort();
	} else if (!msg[0]) {
		abort();	/* a refusal always says why */
	}
	free(ct);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char boundary[65];
	size_t blen;
	unsigned stop_at;
	int seed;
	struct outcome whole, pieces;

	check_content_type(data, size);
	if (size < 1)
		return 0;
	blen = (size_t)(data[0] & 63) + 1;
	stop_at = data[0] >> 6;
	if (size < 2 + blen)
		return 0;
	memcpy(boundary, data + 1, blen);
	boundary[blen] = '\0';
	seed = data[1 + blen];
	data += 2 + blen;
	size -= 2 + blen;

	parse(boundary, (const char *)data, size, -1, stop_at, &whole);
	parse(boundary, (const char *)data, size, seed, stop_at, &pieces);
	if (whole.rc != pieces.rc || whole.hash != pieces.hash || strcmp(whole.msg, pieces.msg))
		abort();
	if ((whole.rc != 0) != (whole.msg[0] != '\0'))
		abort();	/* a message exactly when something went wrong */
	return 0;
}
