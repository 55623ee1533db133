/*
 * multipart.c - a streaming multipart/form-data parser (RFC 7578, with the
 * framing of RFC 2046 section 5.1.1).
 *
 * The body is a preamble, then parts separated by the delimiter
 * CRLF "--" boundary, then "--" and an epilogue.  The first delimiter may
 * also come at the very start of the body, without a CRLF before it; the
 * parser handles that by starting as if a CRLF had just been read.
 *
 * Finding delimiters: the bytes that might be the start of a delimiter
 * are held back and are, by construction, always a prefix of the
 * delimiter itself.  So nothing of the body needs to be copied: when the
 * match breaks, the held bytes are handed to part_data straight from the
 * delimiter string, and the match falls back along a Knuth-Morris-Pratt
 * failure table (for the delimiters RFC 2046 allows, whose only CR is the
 * first byte, that always falls back to zero or one byte, but the table
 * keeps the parser correct for any boundary it is given).  Memory is one
 * fixed-size struct: a part's header block of at most MLC_MP_MAX_HEADERS
 * bytes, the delimiter and its table.
 *
 * Choices where clients or RFCs leave room:
 *  - Header lines must end in CRLF.  Browsers, curl and python-requests
 *    all send CRLF, and the delimiter itself is defined with CRLF, so a
 *    body with bare LF line ends would not be found to have delimiters
 *    anyway; a bare LF or CR in a header block is rejected by name.
 *  - Folded header lines (a line starting with a space or tab continues
 *    the previous one) are unfolded, as any MIME parser does.
 *  - Inside a quoted parameter value, \" and \\ stand for " and \; a
 *    backslash before any other byte is kept, so old browsers' Windows
 *    paths (filename="C:\dir\x.csv") keep their backslashes.
 *  - filename= is taken as sent (browsers percent-encode only ", CR and
 *    LF there, and not % itself, so decoding it would be a guess);
 *    filename*=UTF-8''... (RFC 5987) is percent-decoded and wins over
 *    filename= whatever their order.  Other charsets are refused.  The
 *    decoded name is not checked to be valid UTF-8.
 *  - A body whose first delimiter is already the closing one has no
 *    parts; that is accepted, and the caller finds its fields missing.
 *  - Nothing is truncated: a name, file name or Content-Type that does
 *    not fit its buffer is an error.
 */
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mlc.h"
#include "multipart.h"

#define DELIM_MAX (4 + MLC_MP_MAX_BOUNDARY)	/* CRLF "--" boundary */

enum mp_state {
	MP_PREAMBLE,	/* discarding bytes before the first delimiter */
	MP_AFTER_DELIM,	/* just read a delimiter: "--", padding or CRLF next */
	MP_DASH,	/* read one '-' after a delimiter */
	MP_PADDING,	/* transport padding (spaces, tabs) after a delimiter */
	MP_LINE_CR,	/* read the CR ending a boundary line */
	MP_HEADERS,	/* collecting a part's header block */
	MP_DATA,	/* handing a part's contents to part_data */
	MP_DONE,	/* read the closing delimiter; the epilogue is ignored */
};

struct mlc_mp {
	struct mlc_mp_callbacks cb;
	void *ctx;
	enum mp_state state;
	int rc;				/* 0, or the sticky MLC_MP_ERROR / ABORTED */
	char delim[DELIM_MAX];		/* CRLF "--" boundary, not terminated */
	size_t dlen;
	size_t fail[DELIM_MAX + 1];	/* KMP: longest border of delim[0..i) */
	size_t match;			/* delim[0..match) is read and held back */
	unsigned parts;			/* parts begun, for limits and messages */
	size_t hlen;
	char hdr[MLC_MP_MAX_HEADERS];	/* the current part's header block */
	char scratch[MLC_MP_MAX_HEADERS];	/* an unquoted filename* value */
	struct mlc_mp_part part;
	char msg[200];
};

/* A piece of a header or parameter, not NUL-terminated. */
struct span {
	const char *p;
	size_t n;
};

/* A Content-Disposition or Content-Type parameter as found. */
struct param {
	struct span name;
	struct span value;	/* inside the quotes when quoted, escapes left in */
	int quoted;
};

/* Record a malformed body: the message is kept for mlc_mp_error and every
 * later call returns MLC_MP_ERROR. */
__attribute__((format(printf, 2, 3)))
static void fail(struct mlc_mp *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
	va_end(ap);
	p->rc = MLC_MP_ERROR;
}

static void aborted(struct mlc_mp *p)
{
	snprintf(p->msg, sizeof(p->msg), "parsing was stopped by a callback");
	p->rc = MLC_MP_ABORTED;
}

/* RFC 7230 tchar: the bytes of a header name, media type or parameter
 * name. */
static int is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* RFC 2046 bchars (a space is allowed, but not as the last byte). */
static int is_bchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z') || (c && strchr("'()+_,-./:=? ", c));
}

/* s equals the NUL-terminated word, ignoring ASCII case. */
static int span_is(struct span s, const char *word)
{
	return s.n == strlen(word) && !strncasecmp(s.p, word, s.n);
}

static struct span trim(const char *p, size_t n)
{
	while (n && is_ows(*p))
		p++, n--;
	while (n && is_ows(p[n - 1]))
		n--;
	return (struct span){ p, n };
}

/* Skip a run of bytes accepted by ok; returns the span skipped. */
static struct span take(const char **pos, const char *end, int (*ok)(unsigned char))
{
	const char *start = *pos;

	while (*pos < end && ok((unsigned char)**pos))
		(*pos)++;
	return (struct span){ start, (size_t)(*pos - start) };
}

static void skip_ows(const char **pos, const char *end)
{
	while (*pos < end && is_ows(**pos))
		(*pos)++;
}

/* Bytes allowed in an unquoted parameter value.  Wider than a token, as
 * clients put '/', '[', '=' and the like there unquoted. */
static int is_bare_value(unsigned char c)
{
	return c > ' ' && c != 0x7f && c != ';' && c != '"';
}

/*
 * Read a quoted-string starting at the opening quote *pos.  On success
 * the span is what lies between the quotes, with escapes still in, and
 * *pos is past the closing quote.  Returns -1 when there is none.
 */
static int take_quoted(const char **pos, const char *end, struct span *out)
{
	const char *q = *pos + 1;

	while (q < end && *q != '"')
		q += (*q == '\\' && q + 1 < end) ? 2 : 1;
	if (q >= end)
		return -1;
	*out = (struct span){ *pos + 1, (size_t)(q - *pos - 1) };
	*pos = q + 1;
	return 0;
}

/*
 * Read the next parameter of a header value: OWS ";" OWS name OWS "="
 * OWS value.  Empty parameters (";;" or a trailing ';') are skipped.
 * Returns 1 with *out filled, 0 at the end of the value, or -1 when the
 * parameters are malformed.
 */
static int next_param(const char **pos, const char *end, struct param *out)
{
	for (;;) {
		skip_ows(pos, end);
		if (*pos == end)
			return 0;
		if (**pos != ';')
			return -1;
		(*pos)++;
		skip_ows(pos, end);
		if (*pos < end && **pos != ';')
			break;
	}
	out->name = take(pos, end, is_tchar);
	skip_ows(pos, end);
	if (!out->name.n || *pos == end || **pos != '=')
		return -1;
	(*pos)++;
	skip_ows(pos, end);
	out->quoted = *pos < end && **pos == '"';
	if (out->quoted)
		return take_quoted(pos, end, &out->value) < 0 ? -1 : 1;
	out->value = take(pos, end, is_bare_value);
	return out->value.n ? 1 : -1;
}

/*
 * Copy a parameter value into dst (cap bytes, NUL-terminated), resolving
 * \" and \\ in a quoted value (a backslash before anything else is kept).
 * Returns the length, or -1 when it does not fit.
 */
static long unquote(const struct param *prm, char *dst, size_t cap)
{
	const char *s = prm->value.p, *end = s + prm->value.n;
	size_t n = 0;

	while (s < end) {
		if (prm->quoted && *s == '\\' && s + 1 < end && (s[1] == '"' || s[1] == '\\'))
			s++;
		if (n + 1 >= cap)
			return -1;
		dst[n++] = *s++;
	}
	dst[n] = '\0';
	return (long)n;
}

/*
 * Split "type/subtype" off the front of a header value into *type
 * (empty when the value does not start with one) and leave *pos after it.
 */
static struct span take_media_type(const char **pos, const char *end)
{
	const char *start;

	skip_ows(pos, end);
	start = *pos;
	take(pos, end, is_tchar);
	if (*pos < end && **pos == '/' && *pos > start) {
		(*pos)++;
		if (take(pos, end, is_tchar).n)
			return (struct span){ start, (size_t)(*pos - start) };
	}
	*pos = start;
	return (struct span){ start, 0 };
}

/* Check a boundary's bytes against RFC 2046; returns a complaint or NULL. */
static const char *boundary_problem(const char *b, size_t n, size_t cap)
{
	if (!n)
		return "multipart boundary is empty";
	if (n > MLC_MP_MAX_BOUNDARY)
		return "multipart boundary is longer than 70 bytes";
	for (size_t i = 0; i < n; i++)
		if (!is_bchar((unsigned char)b[i]))
			return "multipart boundary contains a character RFC 2046 does not allow";
	if (b[n - 1] == ' ')
		return "multipart boundary ends in a space";
	if (n >= cap)
		return "multipart boundary does not fit the caller's buffer";
	return NULL;
}

/*
 * Find the one boundary parameter among the parameters in pos..end.
 * Returns a complaint, or NULL with the parameter in *found.
 */
static const char *boundary_param(const char *pos, const char *end, struct param *found)
{
	struct param prm;
	int rc;

	found->name.p = NULL;
	while ((rc = next_param(&pos, end, &prm)) > 0) {
		if (!span_is(prm.name, "boundary"))
			continue;
		if (found->name.p)
			return "Content-Type has more than one boundary parameter";
		*found = prm;
	}
	if (rc < 0)
		return "Content-Type has malformed parameters";
	if (!found->name.p)
		return "Content-Type has no boundary parameter";
	return NULL;
}

/*
 * Find the boundary parameter of a Content-Type header value; see
 * multipart.h.  The media type is compared without regard to case,
 * other parameters are ignored, a repeated boundary is an error.
 */
int mlc_mp_boundary(const char *content_type, char *boundary, size_t cap,
		    char *msg, size_t msglen)
{
	const char *pos = content_type, *end, *why;
	char tmp[MLC_MP_MAX_BOUNDARY + 2];
	struct param found;
	struct span type;
	long n = -1;

	if (!content_type) {
		snprintf(msg, msglen, "request has no Content-Type; expected multipart/form-data");
		return -1;
	}
	end = pos + strlen(pos);
	type = take_media_type(&pos, end);
	if (!span_is(type, "multipart/form-data")) {
		if (type.n)
			snprintf(msg, msglen, "Content-Type is %.*s, not multipart/form-data",
				 (int)(type.n > 80 ? 80 : type.n), type.p);
		else
			snprintf(msg, msglen, "Content-Type is not multipart/form-data");
		return -1;
	}
	why = boundary_param(pos, end, &found);
	if (!why) {
		n = unquote(&found, tmp, sizeof(tmp));
		why = n < 0 ? "multipart boundary is longer than 70 bytes"
			    : boundary_problem(tmp, (size_t)n, cap);
	}
	if (why) {
		snprintf(msg, msglen, "%s", why);
		return -1;
	}
	memcpy(boundary, tmp, (size_t)n + 1);
	return 0;
}

/* Fill p->fail: fail[i] is the length of the longest proper prefix of
 * delim[0..i) that is also its suffix, the match to fall back to. */
static void build_fail_table(struct mlc_mp *p)
{
	size_t k = 0;

	p->fail[0] = p->fail[1] = 0;
	for (size_t i = 1; i < p->dlen; i++) {
		while (k && p->delim[i] != p->delim[k])
			k = p->fail[k];
		if (p->delim[i] == p->delim[k])
			k++;
		p->fail[i + 1] = k;
	}
}

/*
 * A parser for a body with this boundary (as mlc_mp_boundary returns it),
 * reporting to cb with ctx.  The callbacks are copied; any may be NULL.
 * An empty or over-long boundary gives a parser whose every call fails.
 * Free with mlc_mp_free.
 */
struct mlc_mp *mlc_mp_new(const char *boundary, const struct mlc_mp_callbacks *cb,
			  void *ctx)
{
	struct mlc_mp *p = mlc_xcalloc(1, sizeof(*p));
	size_t blen = strnlen(boundary, MLC_MP_MAX_BOUNDARY + 1);

	if (cb)
		p->cb = *cb;
	p->ctx = ctx;
	p->state = MP_PREAMBLE;
	if (!blen || blen > MLC_MP_MAX_BOUNDARY) {
		fail(p, "multipart boundary must be 1 to %d bytes", MLC_MP_MAX_BOUNDARY);
		return p;
	}
	memcpy(p->delim, "\r\n--", 4);
	memcpy(p->delim + 4, boundary, blen);
	p->dlen = 4 + blen;
	build_fail_table(p);
	/* The first delimiter may open the body: pretend a CRLF came first. */
	p->match = 2;
	return p;
}

void mlc_mp_free(struct mlc_mp *p)
{
	free(p);
}

/* Hand n bytes of the current part to part_data.  Bytes before the first
 * delimiter are the preamble and go nowhere. */
static void emit(struct mlc_mp *p, const char *d, size_t n)
{
	if (!n || p->state != MP_DATA || !p->cb.part_data)
		return;
	if (p->cb.part_data(p->ctx, d, n))
		aborted(p);
}

/*
 * The delimiter is mismatched by the byte after delim[0..match): fall
 * back to the longest border that may still grow into a delimiter, and
 * emit the bytes that fell out of the match (copied from delim, which
 * they are equal to).
 */
static void fall_back(struct mlc_mp *p)
{
	size_t k = p->fail[p->match];

	emit(p, p->delim, p->match - k);
	p->match = k;
}

/* The delimiter is complete: the part (if any) ends. */
static void delimiter_found(struct mlc_mp *p)
{
	int in_part = p->state == MP_DATA;

	p->match = 0;
	p->state = MP_AFTER_DELIM;
	if (in_part && p->cb.part_end && p->cb.part_end(p->ctx))
		aborted(p);
}

/*
 * Scan data for the delimiter, in the preamble or in a part.  Bytes that
 * cannot belong to it are emitted in runs as long as the input allows.
 * Returns the number of bytes consumed: up to the end of the delimiter
 * when it completes, else all of them.
 */
static size_t scan_body(struct mlc_mp *p, const char *data, size_t len)
{
	size_t i = 0, run = 0;	/* data[run..i) is unemitted content */

	while (i < len && !p->rc) {
		if (!p->match) {
			/* every delimiter starts with the CR of its CRLF */
			const char *cr = memchr(data + i, '\r', len - i);

			if (!cr) {
				i = len;
				break;
			}
			i = (size_t)(cr - data);
			emit(p, data + run, i - run);
			run = i;
			if (p->rc)
				break;
		}
		if (data[i] == p->delim[p->match]) {
			i++;
			if (++p->match == p->dlen) {
				delimiter_found(p);
				return i;
			}
			continue;
		}
		fall_back(p);
		run = i;	/* data[i] is tried again at the shorter match */
	}
	if (!p->match && !p->rc)
		emit(p, data + run, i - run);
	return i;
}

/* The boundary line ended in CRLF: a part's header block follows. */
static void start_part(struct mlc_mp *p)
{
	if (++p->parts > MLC_MP_MAX_PARTS) {
		fail(p, "body has more than %d parts", MLC_MP_MAX_PARTS);
		return;
	}
	p->state = MP_HEADERS;
	p->hlen = 0;
}

/*
 * One byte after a delimiter: "--" ends the body; otherwise optional
 * transport padding and CRLF end the boundary line.  Anything else means
 * the delimiter was not one, which RFC 2046 forbids inside a part.
 */
static size_t after_delim(struct mlc_mp *p, char c)
{
	int dash_ok = p->state == MP_AFTER_DELIM || p->state == MP_DASH;
	int line_ok = p->state == MP_AFTER_DELIM || p->state == MP_PADDING;

	if (c == '-' && dash_ok)
		p->state = p->state == MP_DASH ? MP_DONE : MP_DASH;
	else if (is_ows(c) && line_ok)
		p->state = MP_PADDING;
	else if (c == '\r' && line_ok)
		p->state = MP_LINE_CR;
	else if (c == '\n' && p->state == MP_LINE_CR)
		start_part(p);
	else
		fail(p, "boundary line %u is followed by other bytes than CRLF or \"--\"",
		     p->parts + 1);
	return 1;
}

/* Copy the value into a part field of size cap; complains when too long. */
static int copy_field(struct mlc_mp *p, const struct param *prm, char *dst,
		      size_t cap, const char *what)
{
	if (unquote(prm, dst, cap) >= 0)
		return 0;
	fail(p, "part %u %s is longer than %zu bytes", p->parts, what, cap - 1);
	return -1;
}

/*
 * Decode filename*=charset'language'percent-encoded (RFC 5987) into
 * p->part.filename.  Only UTF-8 is taken; the language is ignored.
 */
static int decode_ext_filename(struct mlc_mp *p, const struct param *prm)
{
	char *q1, *q2, *raw;
	long n = unquote(prm, p->scratch, sizeof(p->scratch));
	int outlen = 0, rc = -1;

	q1 = n < 0 ? NULL : strchr(p->scratch, '\'');
	q2 = q1 ? strchr(q1 + 1, '\'') : NULL;
	if (!q2) {
		fail(p, "part %u has a malformed filename* parameter", p->parts);
		return -1;
	}
	if (q1 - p->scratch != 5 || strncasecmp(p->scratch, "UTF-8", 5)) {
		fail(p, "part %u filename* is in %.*s; only UTF-8 is supported", p->parts,
		     (int)(q1 - p->scratch > 40 ? 40 : q1 - p->scratch), p->scratch);
		return -1;
	}
	raw = curl_easy_unescape(NULL, q2 + 1, (int)strlen(q2 + 1), &outlen);
	if (!raw)
		mlc_die("out of memory decoding a file name");
	if (memchr(raw, '\0', (size_t)outlen))
		fail(p, "part %u filename* decodes to a NUL byte", p->parts);
	else if ((size_t)outlen >= sizeof(p->part.filename))
		fail(p, "part %u filename is longer than %zu bytes", p->parts,
		     sizeof(p->part.filename) - 1);
	else
		rc = 0;
	if (!rc)
		memcpy(p->part.filename, raw, (size_t)outlen + 1);
	curl_free(raw);
	return rc;
}

/* Keep a parameter we know in *slot; saying so when it comes twice. */
static int keep_param(struct mlc_mp *p, const struct param *prm, struct param *slot)
{
	if (slot->name.p) {
		fail(p, "part %u repeats the %.*s parameter", p->parts,
		     (int)prm->name.n, prm->name.p);
		return -1;
	}
	*slot = *prm;
	return 0;
}

/*
 * Collect the name, filename and filename* parameters of a
 * Content-Disposition value that follow the disposition type.
 */
static int collect_params(struct mlc_mp *p, const char *pos, const char *end,
			  struct param *name, struct param *fn, struct param *fnstar)
{
	struct param prm;
	int rc;

	while ((rc = next_param(&pos, end, &prm)) > 0) {
		struct param *slot = span_is(prm.name, "name") ? name
				   : span_is(prm.name, "filename") ? fn
				   : span_is(prm.name, "filename*") ? fnstar : NULL;

		if (slot && keep_param(p, &prm, slot) < 0)
			return -1;
	}
	if (rc < 0) {
		fail(p, "part %u has a malformed Content-Disposition header", p->parts);
		return -1;
	}
	return 0;
}

/*
 * Parse the value of a part's Content-Disposition: "form-data" and its
 * parameters, into p->part.
 */
static int parse_disposition(struct mlc_mp *p, struct span v)
{
	const char *pos = v.p, *end = v.p + v.n;
	struct param name = { { NULL, 0 }, { NULL, 0 }, 0 }, fn = name, fnstar = name;
	struct span type = take(&pos, end, is_tchar);

	if (!type.n) {
		fail(p, "part %u has a malformed Content-Disposition header", p->parts);
		return -1;
	}
	if (!span_is(type, "form-data")) {
		fail(p, "part %u has Content-Disposition %.*s, not form-data", p->parts,
		     (int)(type.n > 40 ? 40 : type.n), type.p);
		return -1;
	}
	if (collect_params(p, pos, end, &name, &fn, &fnstar) < 0)
		return -1;
	if (!name.name.p) {
		fail(p, "part %u has no name parameter in its Content-Disposition", p->parts);
		return -1;
	}
	if (copy_field(p, &name, p->part.name, sizeof(p->part.name), "name") < 0)
		return -1;
	if (!p->part.name[0]) {
		fail(p, "part %u has an empty name", p->parts);
		return -1;
	}
	p->part.has_filename = fn.name.p || fnstar.name.p;
	if (fnstar.name.p)
		return decode_ext_filename(p, &fnstar);
	if (fn.name.p)
		return copy_field(p, &fn, p->part.filename, sizeof(p->part.filename),
				  "filename");
	return 0;
}

/*
 * One header line "Name: value" (unfolded, without its CRLF).  seen
 * counts Content-Disposition (bit 0) and Content-Type (bit 1) headers,
 * which may come once each; other headers are ignored.
 */
static int parse_header_line(struct mlc_mp *p, const char *s, size_t n, int *seen)
{
	const char *pos = s;
	struct span name = take(&pos, s + n, is_tchar);
	struct span value;
	int bit;

	if (!name.n || pos == s + n || *pos != ':') {
		fail(p, "part %u has a malformed header line", p->parts);
		return -1;
	}
	value = trim(pos + 1, (size_t)(s + n - pos - 1));
	bit = span_is(name, "Content-Disposition") ? 1 : span_is(name, "Content-Type") ? 2 : 0;
	if (!bit)
		return 0;
	if (*seen & bit) {
		fail(p, "part %u has more than one %.*s header", p->parts, (int)name.n, name.p);
		return -1;
	}
	*seen |= bit;
	if (bit == 1)
		return parse_disposition(p, value);
	if (value.n >= sizeof(p->part.content_type)) {
		fail(p, "part %u Content-Type is longer than %zu bytes", p->parts,
		     sizeof(p->part.content_type) - 1);
		return -1;
	}
	memcpy(p->part.content_type, value.p, value.n);
	return 0;
}

/*
 * The header block in p->hdr is complete (it ends with an empty line):
 * unfold it, parse each line into p->part, and start the part.
 */
static void parse_header_block(struct mlc_mp *p)
{
	size_t len = p->hlen - 2;	/* drop the empty line's CRLF */
	size_t start = 0;
	int seen = 0;

	memset(&p->part, 0, sizeof(p->part));
	for (size_t i = 0; i + 2 < len; i++)
		if (p->hdr[i] == '\r' && is_ows(p->hdr[i + 2]))
			p->hdr[i] = p->hdr[i + 1] = ' ';
	while (start < len) {
		const char *eol = memmem(p->hdr + start, len - start, "\r\n", 2);
		size_t n = (size_t)(eol - (p->hdr + start));

		if (parse_header_line(p, p->hdr + start, n, &seen) < 0)
			return;
		start += n + 2;
	}
	if (!(seen & 1)) {
		fail(p, "part %u has no Content-Disposition header", p->parts);
		return;
	}
	p->state = MP_DATA;
	if (p->cb.part_begin && p->cb.part_begin(p->ctx, &p->part))
		aborted(p);
}

/*
 * Collect header bytes until the empty line that ends the block.  Lines
 * must end in CRLF; NUL bytes and blocks over MLC_MP_MAX_HEADERS bytes
 * are refused.  Returns the bytes consumed.
 */
static size_t feed_headers(struct mlc_mp *p, const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = data[i];
		char prev = p->hlen ? p->hdr[p->hlen - 1] : '\0';

		if (c == '\0')
			fail(p, "part %u headers contain a NUL byte", p->parts);
		else if (prev == '\r' && c != '\n')
			fail(p, "part %u headers contain a CR without LF", p->parts);
		else if (c == '\n' && prev != '\r')
			fail(p, "part %u header line ends in a bare LF, not CRLF", p->parts);
		else if (p->hlen == sizeof(p->hdr))
			fail(p, "part %u header block is longer than %d bytes", p->parts,
			     MLC_MP_MAX_HEADERS);
		if (p->rc)
			return i + 1;
		p->hdr[p->hlen++] = c;
		if (c == '\n' && (p->hlen == 2 || (p->hlen >= 4 &&
				  !memcmp(p->hdr + p->hlen - 4, "\r\n\r\n", 4)))) {
			parse_header_block(p);
			return i + 1;
		}
	}
	return len;
}

/* Consume a prefix of data according to the state; returns its length,
 * at least 1 byte unless len is 0. */
static size_t step(struct mlc_mp *p, const char *data, size_t len)
{
	switch (p->state) {
	case MP_PREAMBLE:
	case MP_DATA:
		return scan_body(p, data, len);
	case MP_HEADERS:
		return feed_headers(p, data, len);
	case MP_DONE:
		return len;
	default:
		return after_delim(p, *data);
	}
}

/* Feed the next len bytes; see multipart.h. */
int mlc_mp_feed(struct mlc_mp *p, const char *data, size_t len)
{
	size_t off = 0;

	while (!p->rc && off < len)
		off += step(p, data + off, len - off);
	return p->rc;
}

/* The body ended; only after the closing delimiter is that complete. */
int mlc_mp_finish(struct mlc_mp *p)
{
	if (p->rc || p->state == MP_DONE)
		return p->rc;
	if (p->state == MP_PREAMBLE)
		fail(p, "body ends before the first boundary");
	else
		fail(p, "body ends before the closing boundary");
	return p->rc;
}

const char *mlc_mp_error(const struct mlc_mp *p)
{
	return p->msg;
}
