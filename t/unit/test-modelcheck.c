/*
 * test-modelcheck.c - the model upload check: pickles and the files
 * joblib.dump writes (plain, zlib, gzip, bz2, xz, lzma) are accepted, also
 * when fed one byte at a time or split anywhere; wrong files, compressed
 * data without a pickle, truncated and corrupt streams, lz4, the old 'ZF'
 * format, a dictionary too large, bombs and endless empty blocks are
 * refused (or accepted after their start) with the right message, without
 * decompressing more than the start.
 */
#include <bzlib.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "modelcheck.h"
#include "tap.h"

#define BIN(lit) (const unsigned char *)(lit), (sizeof(lit) - 1)

/* pickle.dumps({"coef": [1.5]}, protocol=4) */
static const unsigned char PICKLE4[] =
	"\x80\x04\x95\x15\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x04coef\x94]\x94G?\xf8"
	"\x00\x00\x00\x00\x00\x00a\x73.";
#define PICKLE4_LEN (sizeof(PICKLE4) - 1)

struct verdict {
	int rc;
	int format;
	char msg[256];
};

/* Check s[0..len): the first split bytes, then pieces of step bytes (0:
 * the rest at once); feeding stops at the first refusal. */
static void check(const unsigned char *s, size_t len, size_t split, size_t step,
		  struct verdict *v)
{
	struct mlc_modelcheck m;
	size_t off = 0;
	int rc = 0;

	mlc_modelcheck_init(&m);
	while (!rc && off < len) {
		size_t n = off < split ? split - off : step ? step : len - off;

		if (n > len - off)
			n = len - off;
		rc = mlc_modelcheck_feed(&m, s + off, n);
		off += n;
	}
	v->rc = rc ? rc : mlc_modelcheck_finish(&m);
	v->format = m.format;
	snprintf(v->msg, sizeof(v->msg), "%s", mlc_modelcheck_error(&m));
	if (m.dec)
		v->rc = 99;	/* the decoder must be gone once there is a verdict */
	mlc_modelcheck_free(&m);
	mlc_modelcheck_free(&m);
}

static int same(const struct verdict *a, const struct verdict *b)
{
	return a->rc == b->rc && a->format == b->format && !strcmp(a->msg, b->msg);
}

/* Whole, byte by byte and split at every offset (up to 600) must agree. */
static int consistent(const unsigned char *s, size_t len, struct verdict *whole)
{
	struct verdict v;
	size_t i;

	check(s, len, 0, 0, whole);
	check(s, len, 0, 1, &v);
	if (!same(whole, &v))
		return 0;
	for (i = 1; i < len && i <= 600; i++) {
		check(s, len, i, 0, &v);
		if (!same(whole, &v))
			return 0;
	}
	return 1;
}

static void accepts(const unsigned char *s, size_t len, int format, const char *what)
{
	struct verdict v;
	int agree = consistent(s, len, &v);

	ok(v.rc == 0 && v.format == format && agree, "accepted as %s: %s",
	   mlc_modelcheck_format(format), what);
	if (v.rc)
		diag("refused: %s", v.msg);
}

static void refuses(const unsigned char *s, size_t len, const char *needle, const char *what)
{
	struct verdict v;
	int agree = consistent(s, len, &v);

	ok(v.rc == -1 && agree && strstr(v.msg, needle) && v.format == MLC_MODEL_UNKNOWN,
	   "refused: %s", what);
	if (v.rc != -1 || !strstr(v.msg, needle))
		diag("rc %d, message: %s", v.rc, v.msg);
}

/* ---- making compressed files ---- */

static unsigned char *deflated(const unsigned char *s, size_t len, int gzip, size_t *out_len)
{
	z_stream z;
	size_t cap = len + len / 100 + 1024;
	unsigned char *out = malloc(cap);

	memset(&z, 0, sizeof(z));
	deflateInit2(&z, 6, Z_DEFLATED, gzip ? 16 + MAX_WBITS : MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
	z.next_in = (unsigned char *)s;
	z.avail_in = (unsigned)len;
	z.next_out = out;
	z.avail_out = (unsigned)cap;
	deflate(&z, Z_FINISH);
	*out_len = cap - z.avail_out;
	deflateEnd(&z);
	return out;
}

static unsigned char *bzipped(const unsigned char *s, size_t len, size_t *out_len)
{
	unsigned cap = (unsigned)(len + len / 100 + 1024);
	unsigned char *out = malloc(cap);

	BZ2_bzBuffToBuffCompress((char *)out, &cap, (char *)s, (unsigned)len, 3, 0, 0);
	*out_len = cap;
	return out;
}

/* xz (alone = 0) or the .lzma format (alone = 1), preset 3. */
static unsigned char *lzmaed(const unsigned char *s, size_t len, int alone, size_t *out_len)
{
	lzma_stream x = LZMA_STREAM_INIT;
	lzma_options_lzma opt;
	size_t cap = len + len / 100 + 1024;
	unsigned char *out = malloc(cap);

	lzma_lzma_preset(&opt, 3);
	if ((alone ? lzma_alone_encoder(&x, &opt) : lzma_easy_encoder(&x, 3, LZMA_CHECK_CRC64))
	    != LZMA_OK)
		abort();
	x.next_in = s;
	x.avail_in = len;
	x.next_out = out;
	x.avail_out = cap;
	while (lzma_code(&x, LZMA_FINISH) == LZMA_OK)
		;
	*out_len = cap - x.avail_out;
	lzma_end(&x);
	return out;
}

int main(void)
{
	static const unsigned char text[] = "model = Ridge(alpha=1.0)\nmodel.fit(X, y)\n";
	unsigned char *c, *big;
	size_t n, i;
	struct verdict v;

	/* ---- pickles ---- */
	accepts(PICKLE4, PICKLE4_LEN, MLC_MODEL_PICKLE, "pickle protocol 4");
	accepts(BIN("\x80\x02N."), MLC_MODEL_PICKLE, "a 4-byte pickle of protocol 2");
	accepts(BIN("\x80\x03K\x01."), MLC_MODEL_PICKLE, "a pickle of protocol 3");
	accepts(BIN("\x80\x05\x95\x03\x00\x00\x00\x00\x00\x00\x00K\x01."), MLC_MODEL_PICKLE,
		"a pickle of protocol 5");
	accepts(BIN("\x80\x04"), MLC_MODEL_PICKLE, "the two bytes of a PROTO opcode");
	refuses(BIN("(dp0\nS'a'\np1\nI1\ns."), "must be a Python pickle (protocol 2 to 5)",
		"a pickle of protocol 0");
	refuses(BIN("}q\x00X\x01\x00\x00\x00aq\x01K\x01s."), "must be a Python pickle",
		"a pickle of protocol 1");
	refuses(BIN("\x80\x06\x95"), "must be a Python pickle", "protocol 6");
	refuses(BIN("\x80\x01"), "must be a Python pickle", "protocol 1 after PROTO");
	refuses(BIN("\x80"), "must be a Python pickle", "one byte 0x80");
	refuses(BIN(""), "the file is empty", "an empty file");
	refuses(text, sizeof(text) - 1, "or a file joblib.dump wrote", "a text file");
	refuses(BIN("\x00\x01\x02\x03\x04\x05\x06\x07"), "save it with pickle.dump or joblib.dump",
		"binary noise");
	refuses(BIN("\xfd\x37\x7a"), "must be a Python pickle", "the first bytes of an xz magic");

	/* ---- every compression joblib.dump writes and the runtime loads ---- */
	c = deflated(PICKLE4, PICKLE4_LEN, 0, &n);
	ok(c[0] == 0x78, "zlib data starts with 0x78 (what joblib.dump compress=3 writes)");
	accepts(c, n, MLC_MODEL_ZLIB, "zlib data holding a pickle");
	refuses(c, 1, "zlib data ends before a pickle starts", "zlib data cut after one byte");
	refuses(c, 2, "zlib data ends before a pickle starts", "zlib data cut after its header");
	accepts(c, n - 4, MLC_MODEL_ZLIB, "zlib data without its checksum (found by the runtime)");
	free(c);
	c = deflated(PICKLE4, PICKLE4_LEN, 1, &n);
	accepts(c, n, MLC_MODEL_GZIP, "gzip data holding a pickle");
	refuses(c, 12, "gzip data ends before a pickle starts", "gzip data cut after its header");
	free(c);
	c = bzipped(PICKLE4, PICKLE4_LEN, &n);
	accepts(c, n, MLC_MODEL_BZ2, "bz2 data holding a pickle");
	refuses(c, n / 2, "bz2 data ends before a pickle starts", "bz2 data cut in half");
	free(c);
	c = lzmaed(PICKLE4, PICKLE4_LEN, 0, &n);
	accepts(c, n, MLC_MODEL_XZ, "xz data holding a pickle");
	refuses(c, 12, "xz data ends before a pickle starts", "xz data cut after its stream header");
	free(c);
	c = lzmaed(PICKLE4, PICKLE4_LEN, 1, &n);
	ok(c[0] == 0x5d && c[1] == 0, "the .lzma header starts 5d 00");
	accepts(c, n, MLC_MODEL_LZMA, "lzma data holding a pickle");
	refuses(c, 13, "lzma data ends before a pickle starts", "lzma data cut after its header");
	/* A dictionary of 1.5 GiB in the header: refused before it is allocated. */
	c[1] = 0, c[2] = 0, c[3] = 0, c[4] = 0x60;
	refuses(c, n, "needs more than 96 MiB of memory", "lzma data declaring a 1.5 GiB dictionary");
	free(c);

	/* ---- compressed data that is not a model ---- */
	c = deflated(text, sizeof(text) - 1, 0, &n);
	refuses(c, n, "zlib data does not start with a pickle", "zlib data holding text");
	free(c);
	c = deflated(text, sizeof(text) - 1, 1, &n);
	refuses(c, n, "gzip data does not start with a pickle", "gzip data holding text");
	free(c);
	c = bzipped(text, sizeof(text) - 1, &n);
	refuses(c, n, "bz2 data does not start with a pickle", "bz2 data holding text");
	free(c);
	c = lzmaed(text, sizeof(text) - 1, 0, &n);
	refuses(c, n, "xz data does not start with a pickle", "xz data holding text");
	free(c);
	c = lzmaed(text, sizeof(text) - 1, 1, &n);
	refuses(c, n, "lzma data does not start with a pickle", "lzma data holding text");
	free(c);
	c = deflated(BIN("\x80"), 0, &n);
	refuses(c, n, "zlib data ends before a pickle starts", "zlib data holding one byte 0x80");
	free(c);
	c = deflated(BIN("x"), 0, &n);
	refuses(c, n, "zlib data does not start with a pickle", "zlib data holding one byte 'x'");
	free(c);

	/* ---- corrupt, unsupported, hostile ---- */
	refuses(BIN("\x78\x9c\xff\xff\xff\xff\xff\xff"), "not valid zlib data",
		"a zlib header and garbage");
	refuses(BIN("\x78\x00\x00\x00\x00\x00\x00"), "not valid zlib data: incorrect header check",
		"0x78 with a bad zlib header check");
	refuses(BIN("\x78\x20\x00\x00\x00\x01\x00\x00"), "needs a preset dictionary",
		"zlib data that needs a preset dictionary");
	/* A stored block holding the PROTO opcode, then a reserved block type:
	 * judged on the first bytes, however the file is cut. */
	accepts(BIN("\x78\x01\x00\x02\x00\xfd\xff\x80\x04\x07\x00\x00"), MLC_MODEL_ZLIB,
		"a zlib pickle start followed by an invalid block (found by the runtime)");
	refuses(BIN("\x78\x01\x00\x02\x00\xfd\xff" "ab\x07\x00\x00"),
		"zlib data does not start with a pickle", "text followed by an invalid block");
	refuses(BIN("\x1f\x8b\x07\x00\x00\x00\x00\x00\x00\x03"), "not valid gzip data",
		"gzip with an unknown method");
	refuses(BIN("BZh9\x00\x00\x00\x00\x00\x00\x00\x00"), "not valid bz2 data",
		"a bz2 header and garbage");
	refuses(BIN("BZx9\x31\x41\x59\x26\x53\x59"), "not valid bz2 data: bad signature",
		"'BZ' without 'h'");
	refuses(BIN("\xfd\x37\x7a\x58\x5a\x00\x00\x04\xff\xff\xff\xff"), "not valid xz data",
		"an xz magic and garbage");
	refuses(BIN("\x5d\x00\x00\x80\x00\xff\xff\xff\xff\xff\xff\xff\xff"),
		"lzma data ends before a pickle starts", "a .lzma header without data");
	refuses(BIN("\x5d\x00\x00\x80\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"),
		"not valid lzma data: corrupt data", "a .lzma header and garbage");
	refuses(BIN("\x04\x22\x4d\x18\x64\x40\xa7\x00\x00\x00\x00"), "compressed with lz4",
		"an lz4 frame");
	refuses(BIN("ZF0x2a               \x78\x9c"), "joblib before 0.10", "the 'ZF' format");

	/* A bomb behind a pickle start: accepted from its first bytes, and the
	 * decoder never writes more than MLC_MODEL_PEEK bytes. */
	big = calloc(1, 64u << 20);
	big[0] = 0x80, big[1] = 0x04;
	c = deflated(big, 64u << 20, 0, &n);
	check(c, n, 0, 0, &v);
	ok(v.rc == 0 && v.format == MLC_MODEL_ZLIB && n < (1u << 20),
	   "a %zu KiB zlib bomb of 64 MiB behind a pickle start is accepted", n >> 10);
	free(c);
	/* The same bomb of zeros only: refused at its first bytes. */
	big[0] = big[1] = 0;
	c = bzipped(big, 8u << 20, &n);
	check(c, n, 0, 0, &v);
	ok(v.rc == -1 && strstr(v.msg, "bz2 data does not start with a pickle"),
	   "a bz2 bomb of zeros is refused");
	free(c);
	free(big);

	/* Empty stored blocks forever: no output; refused after the limit. */
	n = 2 + 5 * ((MLC_MODEL_SNIFF_MAX / 5) + 100);
	big = malloc(n);
	big[0] = 0x78, big[1] = 0x01;
	for (i = 2; i + 5 <= n; i += 5)
		memcpy(big + i, "\x00\x00\x00\xff\xff", 5);
	check(big, n, 0, 0, &v);
	ok(v.rc == -1 && strstr(v.msg, "holds no pickle start within its first 4 MiB"),
	   "zlib data of empty blocks only is refused after 4 MiB");
	check(big, n, 0, 65536, &v);
	ok(v.rc == -1 && strstr(v.msg, "holds no pickle start within its first 4 MiB"),
	   "the same, fed in 64 KiB pieces");
	check(big, MLC_MODEL_SNIFF_MAX - 3, 0, 0, &v);
	ok(v.rc == -1 && strstr(v.msg, "zlib data ends before a pickle starts"),
	   "the same, shorter than the limit: the data ends before a pickle starts");
	free(big);

	/* A refusal is final. */
	{
		struct mlc_modelcheck m;

		mlc_modelcheck_init(&m);
		ok(mlc_modelcheck_feed(&m, "hello!", 6) == -1 && mlc_modelcheck_feed(&m, "\x80\x04", 2) == -1 &&
		   mlc_modelcheck_finish(&m) == -1, "a refusal is final");
		mlc_modelcheck_init(&m);
		ok(mlc_modelcheck_feed(&m, NULL, 0) == 0 && mlc_modelcheck_feed(&m, "\x80", 1) == 0 &&
		   mlc_modelcheck_feed(&m, NULL, 0) == 0 && mlc_modelcheck_finish(&m) == -1,
		   "empty feeds change nothing");
	}
	is_str(mlc_modelcheck_format(MLC_MODEL_XZ), "xz", "format names");
	is_str(mlc_modelcheck_format(42), "unknown", "an unknown format number");
	return done_testing();
}
