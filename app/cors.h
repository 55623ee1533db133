/*
 * cors.h - Cross-Origin Resource Sharing as FastAPI's CORSMiddleware does
 * it: which origins MLC_CORS_ORIGINS lets read the answers, and the
 * request headers a preflight may ask for.  Both look at request headers
 * only to compare them or to copy well-formed tokens: nothing a client
 * sends reaches a response header unchecked.
 */
#ifndef MLC_CORS_H
#define MLC_CORS_H

#include <stddef.h>

/* The longest Origin value that can be allowed, in bytes. */
#define MLC_CORS_MAX_ORIGIN 512
/* The longest header name a preflight's Access-Control-Request-Headers
 * may list and get back. */
#define MLC_CORS_MAX_HEADER_NAME 64

/* The response headers a browser lets a script read, besides the simple ones. */
#define MLC_CORS_EXPOSE "Content-Disposition, Link, Location, Retry-After, " \
	"WWW-Authenticate, X-Checksum-SHA256, X-Request-Id, X-Total-Count"
/* Seconds a browser may keep a preflight answer (Starlette's default). */
#define MLC_CORS_MAX_AGE 600

enum mlc_cors {
	MLC_CORS_OFF,		/* not configured, or no Origin: no CORS headers */
	MLC_CORS_DENIED,	/* an origin the list does not allow */
	MLC_CORS_ANY,		/* the list has "*": answer "Access-Control-Allow-Origin: *" */
	MLC_CORS_ORIGIN,	/* a listed origin: echo it, with "Vary: Origin" */
};

/*
 * How a request's Origin header fares against list, the value of
 * MLC_CORS_ORIGINS: origins separated by spaces, tabs or commas, or "*".
 * OFF when list is NULL or holds no entry, or origin is NULL or empty.
 * ANY when an entry is "*".  ORIGIN when origin equals an entry, ignoring
 * ASCII case and one trailing '/' of the entry, and is well-formed:
 * 1 to MLC_CORS_MAX_ORIGIN bytes of printable ASCII without spaces or
 * commas (so it can be echoed as it is).  DENIED otherwise.
 */
enum mlc_cors mlc_cors_check(const char *list, const char *origin);

/*
 * The Access-Control-Allow-Headers value of a preflight answer, into
 * buf: "Authorization, Content-Type", then every entry of requested (the
 * Access-Control-Request-Headers value, comma-separated, may be NULL)
 * that is an RFC 9110 token of at most MLC_CORS_MAX_HEADER_NAME bytes and
 * not yet listed (ignoring case), as sent.  Other entries are left out,
 * and so is any entry that would not fit whole.  buf is always
 * NUL-terminated (nothing is written when cap is 0).
 */
void mlc_cors_allow_headers(const char *requested, char *buf, size_t cap);

#endif
