/*
 * multipart.h - a streaming multipart/form-data parser (RFC 7578).
 *
 * The body is fed in pieces of any size, as they arrive; the parser keeps
 * at most one part's header block and a boundary's length of data, so
 * memory does not grow with the size of the body.  File contents are
 * handed to the part_data callback as they are recognised.
 */
#ifndef MLC_MULTIPART_H
#define MLC_MULTIPART_H

#include <stddef.h>

#define MLC_MP_MAX_BOUNDARY 70		/* RFC 2046 */
#define MLC_MP_MAX_HEADERS 8192		/* bytes of one part's header block */
#define MLC_MP_MAX_PARTS 16
#define MLC_MP_MAX_NAME 256		/* field name, bytes including NUL */
#define MLC_MP_MAX_FILENAME 1024	/* decoded file name, bytes including NUL */
#define MLC_MP_MAX_CTYPE 256

struct mlc_mp_part {
	char name[MLC_MP_MAX_NAME];		/* Content-Disposition name= */
	char filename[MLC_MP_MAX_FILENAME];	/* filename= or decoded filename*=, "" if none */
	int has_filename;			/* a filename parameter was present */
	char content_type[MLC_MP_MAX_CTYPE];	/* the part's Content-Type, "" if none */
};

/* Each callback returns 0 to go on or nonzero to abort parsing; the
 * parser then returns MLC_MP_ABORTED from mlc_mp_feed. */
struct mlc_mp_callbacks {
	int (*part_begin)(void *ctx, const struct mlc_mp_part *part);
	int (*part_data)(void *ctx, const char *data, size_t len);
	int (*part_end)(void *ctx);
};

struct mlc_mp;

#define MLC_MP_ERROR (-1)	/* malformed body; mlc_mp_error says what */
#define MLC_MP_ABORTED (-2)	/* a callback asked to stop */

/*
 * Extract the boundary parameter from a Content-Type header value such as
 * 'multipart/form-data; boundary="abc"'.  Returns 0, or -1 with a sentence
 * in msg when the type is not multipart/form-data or the boundary is
 * missing, empty, longer than 70 bytes or has characters RFC 2046 forbids.
 */
int mlc_mp_boundary(const char *content_type, char *boundary, size_t cap,
		    char *msg, size_t msglen);

struct mlc_mp *mlc_mp_new(const char *boundary, const struct mlc_mp_callbacks *cb,
			  void *ctx);
void mlc_mp_free(struct mlc_mp *p);

/* Feed the next len bytes of the body.  Returns 0, MLC_MP_ERROR or
 * MLC_MP_ABORTED; after a non-zero return, further calls return it again. */
int mlc_mp_feed(struct mlc_mp *p, const char *data, size_t len);

/* The body has ended: returns 0 if the closing boundary was seen (the
 * epilogue after it is ignored), MLC_MP_ERROR otherwise. */
int mlc_mp_finish(struct mlc_mp *p);

/* A sentence naming what was wrong, e.g. "part 2 has no Content-Disposition
 * header" or "body ends before the closing boundary". */
const char *mlc_mp_error(const struct mlc_mp *p);

#endif
