/*
 * pieces.h - how the streaming-parser fuzz targets cut their input: piece
 * sizes drawn from a seed (xorshift), empty pieces included, so that split
 * handling is fuzzed as well as content.
 */
#ifndef MLC_FUZZ_PIECES_H
#define MLC_FUZZ_PIECES_H

#include <stddef.h>
#include <stdint.h>

struct pieces {
	uint32_t x;
	size_t max;
	int whole;	/* seed < 0: the whole input in one piece */
};

static inline void pieces_init(struct pieces *p, int seed)
{
	p->x = 0x9e3779b9u ^ (uint32_t)seed;
	p->max = (size_t)1 << (seed & 7);
	p->whole = seed < 0;
}

/* The size of the next piece, at most left (0 now and then: an empty feed). */
static inline size_t pieces_next(struct pieces *p, size_t left)
{
	size_t n;

	if (p->whole)
		return left;
	p->x ^= p->x << 13;
	p->x ^= p->x >> 17;
	p->x ^= p->x << 5;
	n = p->x % (p->max + 1);
	return n > left ? left : n;
}

#endif
