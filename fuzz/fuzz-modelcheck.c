/*
 * fuzz-modelcheck.c - libFuzzer target for the model upload check
 * (pickle and joblib.dump files, peeking into zlib, gzip, bz2, xz and
 * lzma data).
 *
 * Byte 0 seeds the piece sizes; the rest is the file.  It is checked once
 * whole and once in pieces of pseudo-random sizes (with empty feeds in
 * between); verdict, format and message must agree, a refusal must say
 * what the model file is not, the decoder must be gone after the verdict,
 * and an accepted compressed file must hold a pickle start, or the target
 * aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pieces.h"

#include "modelcheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct verdict {
	int rc;
	int format;
	unsigned char out[MLC_MODEL_PEEK];
	size_t out_len;
	char msg[256];
};

static void check(const uint8_t *s, size_t len, int seed, struct verdict *v)
{
	struct mlc_modelcheck m;
	struct pieces cut;
	size_t off = 0;
	int rc = 0;

	mlc_modelcheck_init(&m);
	pieces_init(&cut, seed);
	while (!rc && off < len) {
		size_t n = pieces_next(&cut, len - off);

		rc = mlc_modelcheck_feed(&m, s + off, n);
		off += n;
	}
	v->rc = rc ? rc : mlc_modelcheck_finish(&m);
	if (m.dec)
		abort();	/* a verdict releases the decoder */
	if (v->rc && (mlc_modelcheck_feed(&m, "\x80\x04", 2) != -1 || mlc_modelcheck_finish(&m) != -1))
		abort();	/* a refusal is final */
	v->format = m.format;
	memcpy(v->out, m.out, sizeof(v->out));
	v->out_len = m.out_len;
	strcpy(v->msg, mlc_modelcheck_error(&m));
	mlc_modelcheck_free(&m);
}

static int message_fits(const struct verdict *v)
{
	if (!v->rc)
		return v->msg[0] == '\0';
	return !strncmp(v->msg, "the model file", 14) || !strncmp(v->msg, "a model file ", 13) ||
	       !strcmp(v->msg, "the file is empty");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct verdict whole, pieces;

	if (size < 1)
		return 0;
	check(data + 1, size - 1, -1, &whole);
	check(data + 1, size - 1, data[0], &pieces);
	if (whole.rc != pieces.rc || whole.format != pieces.format || strcmp(whole.msg, pieces.msg))
		abort();
	if (!message_fits(&whole))
		abort();
	if (!whole.rc && whole.format == MLC_MODEL_UNKNOWN)
		abort();
	if (!whole.rc && whole.format != MLC_MODEL_PICKLE &&
	    (whole.out_len != MLC_MODEL_PEEK || whole.out[0] != 0x80 || whole.out[1] < 2 ||
	     whole.out[1] > 5))
		abort();
	return 0;
}
