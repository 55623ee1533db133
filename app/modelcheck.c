/*
 * modelcheck.c - is an uploaded model file a pickle, or a joblib.dump file
 * the runtime can load?  See modelcheck.h for the rule.
 *
 * The format is told by the first bytes, in the order joblib.load tells
 * them (joblib/numpy_pickle_utils.py, _detect_compressor): the pickle
 * PROTO opcode 0x80 with protocol 2 to 5 (pickle.dump, and joblib.dump
 * without compression, which writes array buffers inline after the
 * pickle's wrapper objects), "ZF" (joblib before 0.10), 0x78 (zlib), 1f 8b
 * (gzip), "BZ" (bz2), 5d 00 (lzma), fd "7zXZ" (xz), 04 22 4d 18 (lz4).
 *
 * A compressed file is decompressed only until its first MLC_MODEL_PEEK
 * bytes are out, which must be a pickle's PROTO opcode; the decoder gets
 * an output buffer of that size, so no amount of input makes it write
 * more, and it is released as soon as the verdict is known.
 */
#include <bzlib.h>
#include <lzma.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "modelcheck.h"

#define HEAD_NEED 6	/* enough for every magic below */

enum { S_HEAD, S_DECODE, S_OK, S_FAIL };

struct decoder {
	int format;
	union {
		z_stream z;
		bz_stream bz;
		lzma_stream xz;
	} s;
};

static const char *const format_names[] = {
	[MLC_MODEL_UNKNOWN] = "unknown", [MLC_MODEL_PICKLE] = "pickle",
	[MLC_MODEL_ZLIB] = "zlib", [MLC_MODEL_GZIP] = "gzip", [MLC_MODEL_BZ2] = "bz2",
	[MLC_MODEL_XZ] = "xz", [MLC_MODEL_LZMA] = "lzma",
};

const char *mlc_modelcheck_format(int format)
{
	if (format < 0 || format > MLC_MODEL_LZMA)
		return "unknown";
	return format_names[format];
}

void mlc_modelcheck_init(struct mlc_modelcheck *m)
{
	memset(m, 0, sizeof(*m));
	m->state = S_HEAD;
}

const char *mlc_modelcheck_error(const struct mlc_modelcheck *m)
{
	return m->msg;
}

void mlc_modelcheck_free(struct mlc_modelcheck *m)
{
	struct decoder *d = m->dec;

	if (!d)
		return;
	switch (d->format) {
	case MLC_MODEL_ZLIB:
	case MLC_MODEL_GZIP:
		inflateEnd(&d->s.z);
		break;
	case MLC_MODEL_BZ2:
		BZ2_bzDecompressEnd(&d->s.bz);
		break;
	default:
		lzma_end(&d->s.xz);
		break;
	}
	free(d);
	m->dec = NULL;
}

__attribute__((format(printf, 2, 3)))
static int fail(struct mlc_modelcheck *m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m->msg, sizeof(m->msg), fmt, ap);
	va_end(ap);
	mlc_modelcheck_free(m);
	m->state = S_FAIL;
	m->format = MLC_MODEL_UNKNOWN;
	return -1;
}

static int fail_internal(struct mlc_modelcheck *m, const char *what)
{
	m->internal = 1;
	return fail(m, "cannot check the model file: %s", what);
}

static int is_pickle_start(const unsigned char *p, size_t n)
{
	return n >= 2 && p[0] == 0x80 && p[1] >= 2 && p[1] <= 5;
}

static int starts(const unsigned char *p, size_t n, const char *magic, size_t len)
{
	return n >= len && !memcmp(p, magic, len);
}

/* Start the decoder for format; -1 (refused, internal) when it cannot. */
static int decoder_start(struct mlc_modelcheck *m, int format)
{
	struct decoder *d = calloc(1, sizeof(*d));
	int rc;

	if (!d)
		return fail_internal(m, "out of memory");
	d->format = format;
	switch (format) {
	case MLC_MODEL_ZLIB:
	case MLC_MODEL_GZIP:
		rc = inflateInit2(&d->s.z, format == MLC_MODEL_GZIP ? 16 + MAX_WBITS : MAX_WBITS);
		rc = rc == Z_OK ? 0 : -1;
		break;
	case MLC_MODEL_BZ2:
		/* small = 1: about 2.3 MB for the largest block instead of 3.6 */
		rc = BZ2_bzDecompressInit(&d->s.bz, 0, 1) == BZ_OK ? 0 : -1;
		break;
	case MLC_MODEL_XZ:
		rc = lzma_stream_decoder(&d->s.xz, MLC_MODEL_LZMA_MEMLIMIT, 0) == LZMA_OK ? 0 : -1;
		break;
	default:
		rc = lzma_alone_decoder(&d->s.xz, MLC_MODEL_LZMA_MEMLIMIT) == LZMA_OK ? 0 : -1;
		break;
	}
	if (rc < 0) {
		free(d);
		return fail_internal(m, "out of memory");
	}
	m->dec = d;
	m->format = format;
	m->state = S_DECODE;
	return 0;
}

/* Tell the format from the first bytes (all of them when the file is
 * shorter than HEAD_NEED); -1 when it is refused. */
static int classify(struct mlc_modelcheck *m)
{
	const unsigned char *h = m->head;
	size_t n = m->head_len;

	if (!n)
		return fail(m, "the file is empty");
	if (is_pickle_start(h, n)) {
		m->format = MLC_MODEL_PICKLE;
		m->state = S_OK;
		return 0;
	}
	if (starts(h, n, "ZF", 2))
		return fail(m, "the model file is a compressed file of joblib before 0.10 (the 'ZF' "
			    "format, which keeps arrays in separate files); load it with that "
			    "joblib and save it again with joblib.dump or pickle.dump");
	if (starts(h, n, "\x78", 1))
		return decoder_start(m, MLC_MODEL_ZLIB);
	if (starts(h, n, "\x1f\x8b", 2))
		return decoder_start(m, MLC_MODEL_GZIP);
	if (starts(h, n, "BZ", 2))
		return decoder_start(m, MLC_MODEL_BZ2);
	if (starts(h, n, "\x5d\x00", 2))
		return decoder_start(m, MLC_MODEL_LZMA);
	if (starts(h, n, "\xfd\x37\x7a\x58\x5a", 5))
		return decoder_start(m, MLC_MODEL_XZ);
	if (starts(h, n, "\x04\x22\x4d\x18", 4))
		return fail(m, "the model file is a joblib.dump file compressed with lz4, which the "
			    "model runtime cannot load (no lz4 module); save it with compress=3 or "
			    "compress=('gzip'|'bz2'|'xz'|'lzma', level)");
	return fail(m, "a model file must be a Python pickle (protocol 2 to 5) or a file "
		    "joblib.dump wrote (plain, or compressed with zlib, gzip, bz2, xz or lzma); "
		    "save it with pickle.dump or joblib.dump");
}

/* The verdict once the first decompressed bytes are out. */
static int judge_output(struct mlc_modelcheck *m)
{
	const char *name = mlc_modelcheck_format(m->format);

	if (!is_pickle_start(m->out, m->out_len))
		return fail(m, "the model file's %s data does not start with a pickle (protocol 2 "
			    "to 5): it is not a file joblib.dump wrote", name);
	mlc_modelcheck_free(m);
	m->state = S_OK;
	return 0;
}

/* The decoded data ended (or the file did) before MLC_MODEL_PEEK bytes. */
static int judge_short(struct mlc_modelcheck *m)
{
	if (m->out_len && m->out[0] != 0x80)
		return judge_output(m);
	return fail(m, "the model file's %s data ends before a pickle starts: the file is cut "
		    "short", mlc_modelcheck_format(m->format));
}

enum { D_MORE, D_END, D_ERROR };

/*
 * One decoder call on in[0..*len); sets *len to the bytes consumed and adds
 * to m->out.  D_ERROR has failed m already.  Once the output is full the
 * verdict is on it alone: a decoder may read on into a broken header
 * after filling the output when more input is at hand, and a verdict must
 * not depend on how the upload was cut into pieces.
 */
static int decode_step(struct mlc_modelcheck *m, const unsigned char *in, size_t *len)
{
	struct decoder *d = m->dec;
	const char *name = mlc_modelcheck_format(m->format);
	size_t room = MLC_MODEL_PEEK - m->out_len, left;
	int rc;

	switch (d->format) {
	case MLC_MODEL_ZLIB:
	case MLC_MODEL_GZIP:
		d->s.z.next_in = (unsigned char *)in;
		d->s.z.avail_in = (unsigned)*len;
		d->s.z.next_out = m->out + m->out_len;
		d->s.z.avail_out = (unsigned)room;
		rc = inflate(&d->s.z, Z_NO_FLUSH);
		left = d->s.z.avail_in;
		m->out_len += room - d->s.z.avail_out;
		*len -= left;
		if (m->out_len == MLC_MODEL_PEEK)
			return D_MORE;	/* judged on these bytes, whatever follows */
		if (rc == Z_STREAM_END)
			return D_END;
		if (rc == Z_OK || rc == Z_BUF_ERROR)
			return D_MORE;
		if (rc == Z_MEM_ERROR)
			return fail_internal(m, "out of memory"), D_ERROR;
		if (rc == Z_NEED_DICT)
			return fail(m, "the model file starts like %s data but is not valid %s data: "
				    "it needs a preset dictionary", name, name), D_ERROR;
		return fail(m, "the model file starts like %s data but is not valid %s data: %s",
			    name, name, d->s.z.msg ? d->s.z.msg : "corrupt data"), D_ERROR;
	case MLC_MODEL_BZ2:
		d->s.bz.next_in = (char *)in;
		d->s.bz.avail_in = (unsigned)*len;
		d->s.bz.next_out = (char *)m->out + m->out_len;
		d->s.bz.avail_out = (unsigned)room;
		rc = BZ2_bzDecompress(&d->s.bz);
		left = d->s.bz.avail_in;
		m->out_len += room - d->s.bz.avail_out;
		*len -= left;
		if (m->out_len == MLC_MODEL_PEEK)
			return D_MORE;	/* judged on these bytes, whatever follows */
		if (rc == BZ_STREAM_END)
			return D_END;
		if (rc == BZ_OK)
			return D_MORE;
		if (rc == BZ_MEM_ERROR)
			return fail_internal(m, "out of memory"), D_ERROR;
		return fail(m, "the model file starts like bz2 data but is not valid bz2 data: %s",
			    rc == BZ_DATA_ERROR_MAGIC ? "bad signature" : "corrupt data"), D_ERROR;
	default: {
		lzma_ret lr;
		const char *why;

		d->s.xz.next_in = in;
		d->s.xz.avail_in = *len;
		d->s.xz.next_out = m->out + m->out_len;
		d->s.xz.avail_out = room;
		lr = lzma_code(&d->s.xz, LZMA_RUN);
		left = d->s.xz.avail_in;
		m->out_len += room - d->s.xz.avail_out;
		*len -= left;
		if (m->out_len == MLC_MODEL_PEEK)
			return D_MORE;	/* judged on these bytes, whatever follows */
		if (lr == LZMA_STREAM_END)
			return D_END;
		if (lr == LZMA_OK || lr == LZMA_BUF_ERROR)
			return D_MORE;
		if (lr == LZMA_MEM_ERROR)
			return fail_internal(m, "out of memory"), D_ERROR;
		if (lr == LZMA_MEMLIMIT_ERROR)
			return fail(m, "the model file's %s data needs more than %u MiB of memory to "
				    "decompress; joblib.dump never writes such a file", name,
				    MLC_MODEL_LZMA_MEMLIMIT >> 20), D_ERROR;
		why = lr == LZMA_FORMAT_ERROR ? "not in the format" :
		      lr == LZMA_OPTIONS_ERROR ? "unsupported options" : "corrupt data";
		return fail(m, "the model file starts like %s data but is not valid %s data: %s",
			    name, name, why), D_ERROR;
	}
	}
}

/* Run the decoder over more of the file. */
static int decode(struct mlc_modelcheck *m, const unsigned char *p, size_t n)
{
	while (n && m->state == S_DECODE) {
		size_t take, used;
		size_t before = m->out_len;
		int rc;

		if (m->fed >= MLC_MODEL_SNIFF_MAX)
			return fail(m, "the model file's %s data holds no pickle start within its "
				    "first %u MiB", mlc_modelcheck_format(m->format),
				    MLC_MODEL_SNIFF_MAX >> 20);
		take = n;
		if (take > MLC_MODEL_SNIFF_MAX - m->fed)
			take = (size_t)(MLC_MODEL_SNIFF_MAX - m->fed);
		used = take;
		rc = decode_step(m, p, &used);
		if (rc == D_ERROR)
			return -1;
		m->fed += used;
		p += used;
		n -= used;
		if (m->out_len == MLC_MODEL_PEEK)
			return judge_output(m);
		if (rc == D_END)
			return judge_short(m);
		if (!used && m->out_len == before)
			return fail(m, "the model file starts like %s data but is not valid %s data: "
				    "the decoder makes no progress", mlc_modelcheck_format(m->format),
				    mlc_modelcheck_format(m->format));
	}
	return m->state == S_FAIL ? -1 : 0;
}

/* Give the decoder p[0..n) in pieces of MLC_MODEL_CHUNK bytes. */
static int pump(struct mlc_modelcheck *m, const unsigned char *p, size_t n)
{
	while (n && m->state == S_DECODE) {
		size_t take = MLC_MODEL_CHUNK - m->in_len;

		if (take > n)
			take = n;
		memcpy(m->in + m->in_len, p, take);
		m->in_len += take;
		p += take;
		n -= take;
		if (m->in_len == MLC_MODEL_CHUNK) {
			m->in_len = 0;
			decode(m, m->in, MLC_MODEL_CHUNK);
		}
	}
	return m->state == S_FAIL ? -1 : 0;
}

int mlc_modelcheck_feed(struct mlc_modelcheck *m, const void *data, size_t len)
{
	const unsigned char *p = data;

	if (m->state == S_FAIL)
		return -1;
	if (m->state == S_HEAD) {
		size_t take = HEAD_NEED - m->head_len;

		if (take > len)
			take = len;
		if (take) {
			memcpy(m->head + m->head_len, p, take);
			m->head_len += take;
			p += take;
			len -= take;
		}
		if (m->head_len < HEAD_NEED)
			return 0;
		if (classify(m) < 0 || pump(m, m->head, m->head_len) < 0)
			return -1;
	}
	return pump(m, p, len);
}

int mlc_modelcheck_finish(struct mlc_modelcheck *m)
{
	if (m->state == S_HEAD && (classify(m) < 0 || pump(m, m->head, m->head_len) < 0))
		return -1;
	if (m->state == S_DECODE && m->in_len) {
		decode(m, m->in, m->in_len);
		m->in_len = 0;
	}
	if (m->state == S_DECODE)
		judge_short(m);
	mlc_modelcheck_free(m);
	return m->state == S_OK ? 0 : -1;
}
