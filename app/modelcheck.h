/*
 * modelcheck.h - a streaming check that an uploaded model file is one the
 * runtime can load: a Python pickle (protocol 2 to 5), which includes what
 * joblib.dump writes without compression, or a joblib.dump file compressed
 * with zlib, gzip, bz2, xz or lzma whose decompressed data starts with a
 * pickle.
 *
 * Only the start is verified: the magic bytes, and for a compressed file
 * the first bytes it decompresses to, read from at most
 * MLC_MODEL_SNIFF_MAX compressed bytes with at most MLC_MODEL_PEEK bytes
 * of output.  The rest of the file is neither decompressed nor held, so a
 * decompression bomb costs nothing here; a file that is corrupt or cut
 * short further on is found when the runtime loads it.  The decoder is
 * given the file in pieces of MLC_MODEL_CHUNK bytes whatever pieces arrive,
 * so that the verdict on a corrupt stream cannot depend on how the upload
 * was cut.
 */
#ifndef MLC_MODELCHECK_H
#define MLC_MODELCHECK_H

#include <stddef.h>

#define MLC_MODEL_SNIFF_MAX (4u << 20)		/* compressed bytes read at most */
#define MLC_MODEL_PEEK 2			/* decompressed bytes looked at */
#define MLC_MODEL_LZMA_MEMLIMIT (96u << 20)	/* xz/lzma decoder memory at most */
#define MLC_MODEL_CHUNK 4096			/* the decoder's input pieces */

enum mlc_model_format {
	MLC_MODEL_UNKNOWN,	/* not decided yet, or refused */
	MLC_MODEL_PICKLE,	/* a pickle: pickle.dump or plain joblib.dump */
	MLC_MODEL_ZLIB,		/* joblib.dump compress=N or ('zlib', N) */
	MLC_MODEL_GZIP,
	MLC_MODEL_BZ2,
	MLC_MODEL_XZ,
	MLC_MODEL_LZMA,		/* the .lzma ("alone") format */
};

struct mlc_modelcheck {
	/* results */
	int format;			/* enum mlc_model_format, once accepted */
	int internal;			/* the refusal is the server's (out of memory) */
	/* private state */
	int state;			/* enum in modelcheck.c */
	unsigned char head[8];		/* the first bytes, until the format is known */
	size_t head_len;
	unsigned char out[MLC_MODEL_PEEK];	/* the first decompressed bytes */
	size_t out_len;
	unsigned char in[MLC_MODEL_CHUNK];	/* input not yet given to the decoder */
	size_t in_len;
	unsigned long long fed;		/* compressed bytes given to the decoder */
	void *dec;			/* the decoder's stream, NULL when none */
	char msg[256];
};

void mlc_modelcheck_init(struct mlc_modelcheck *m);
/* Feed the next bytes of the file; returns 0, or -1 once the file is known
 * to be refused (then mlc_modelcheck_error says why; later calls fail). */
int mlc_modelcheck_feed(struct mlc_modelcheck *m, const void *data, size_t len);
/* End of the file; returns 0 when it is accepted (m->format says as what),
 * -1 otherwise.  Releases the decoder. */
int mlc_modelcheck_finish(struct mlc_modelcheck *m);
/* Release the decoder without a verdict; safe to call at any time, twice. */
void mlc_modelcheck_free(struct mlc_modelcheck *m);
const char *mlc_modelcheck_error(const struct mlc_modelcheck *m);
/* "pickle", "zlib", "gzip", "bz2", "xz", "lzma" or "unknown". */
const char *mlc_modelcheck_format(int format);

#endif
