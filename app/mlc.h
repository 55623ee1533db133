/*
 * mlc.h - definitions shared by every part of the mlc-api service:
 * allocation wrappers that abort on out-of-memory, and the error buffer
 * that lower layers fill and only request handlers turn into a status.
 */
#ifndef MLC_H
#define MLC_H

#include <stddef.h>

#define MLC_ERR_MAX 512

/* Lower layers return -1 and describe the failure here; "code" is a hint
 * for the handler (an HTTP status such as 503 or 422), 0 when unknown. */
struct mlc_err {
	int code;
	char msg[MLC_ERR_MAX];
};

/*
 * Failing, as git's error() does: every failure that becomes a reply is
 * written as
 *
 *	return mlc_error(to, status, "sentence with %s", ...);
 *
 * where to is either the request (the reply {"detail": "<sentence>"}
 * goes out now, see http.h) or a struct mlc_err that a lower layer fills
 * for the handler (NULL: the caller wants no details).  Both return -1.
 *
 * An I/O failure is written with mlc_error_errno: the sentence gets
 * ": <strerror(errno)>" appended, and the status is mlc_errno_status(errno).
 * These are the only places that turn an errno into a status.
 */
struct mlc_req;
int mlc_err_error(struct mlc_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int mlc_err_error_errno(struct mlc_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int mlc_req_error(struct mlc_req *r, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int mlc_req_error_errno(struct mlc_req *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
#define mlc_error(to, ...) _Generic((to), \
	struct mlc_req *: mlc_req_error, \
	struct mlc_err *: mlc_err_error)((to), __VA_ARGS__)
#define mlc_error_errno(to, ...) _Generic((to), \
	struct mlc_req *: mlc_req_error_errno, \
	struct mlc_err *: mlc_err_error_errno)((to), __VA_ARGS__)

/* The status of an I/O failure with errno e: 507 Insufficient Storage when
 * the disk or the quota is full (ENOSPC, EDQUOT), else 500. */
int mlc_errno_status(int e);
/* Append ": <strerror(e)>" to the NUL-terminated msg of cap bytes (errno 0
 * reads as EIO: a short write that set none). */
void mlc_errno_append(char *msg, size_t cap, int e);

void *mlc_xmalloc(size_t n);
void *mlc_xcalloc(size_t nmemb, size_t size);
void *mlc_xrealloc(void *p, size_t n);
char *mlc_xstrdup(const char *s);
char *mlc_xstrndup(const char *s, size_t n);
void mlc_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/*
 * UTF-8 as Python, MariaDB's utf8mb4 and RFC 3629 take it: no overlong
 * forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF.
 *
 * mlc_utf8_seq: the length (1..4) of the valid sequence at s, which has
 * avail > 0 bytes, or 0 with *bad the offset in s of the first byte that
 * makes it invalid (avail when the input ends inside the sequence).
 * mlc_utf8_check: len when s[0..len) is all valid, else the offset of
 * the first offending byte (of the first byte of a sequence the input
 * ends inside).
 * mlc_utf8_trim: cut a NUL-terminated string before an incomplete
 * sequence at its end, as truncating a message to a buffer leaves.
 */
size_t mlc_utf8_seq(const char *s, size_t avail, size_t *bad);
size_t mlc_utf8_check(const char *s, size_t len);
void mlc_utf8_trim(char *s);

#endif
