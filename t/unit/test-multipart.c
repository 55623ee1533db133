/*
 * test-multipart.c - the streaming multipart/form-data parser on bodies
 * as real clients send them, on hostile and malformed bodies, and on the
 * boundary parameter of Content-Type.
 *
 * Every body is parsed whole, split into two pieces at each offset, and
 * fed one byte at a time; all of these must give the same parts, data,
 * result and message.  A parse is recorded as a log string:
 * "{name filename=f type=t}" when a part begins, its data as is, and
 * "{end}" when it ends.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multipart.h"
#include "tap.h"

/* A string literal that may hold NUL bytes, as pointer and length. */
#define BIN(lit) (lit), (sizeof(lit) - 1)

struct buf {
	char *p;
	size_t len, cap;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* What one parse did. */
struct result {
	int rc;
	char msg[256];
	struct buf log;
	unsigned empty_calls;	/* part_data calls with no bytes */
	int stop_at;		/* abort in the callback event number stop_at, 0 never */
	int events;
};

static int event(struct result *r)
{
	return ++r->events == r->stop_at;
}

static int on_begin(void *ctx, const struct mlc_mp_part *part)
{
	struct result *r = ctx;

	buf_str(&r->log, "{");
	buf_str(&r->log, part->name);
	if (part->has_filename) {
		buf_str(&r->log, " filename=");
		buf_str(&r->log, part->filename);
	}
	if (part->content_type[0]) {
		buf_str(&r->log, " type=");
		buf_str(&r->log, part->content_type);
	}
	buf_str(&r->log, "}");
	return event(r);
}

static int on_data(void *ctx, const char *data, size_t len)
{
	struct result *r = ctx;

	if (!len)
		r->empty_calls++;
	buf_add(&r->log, data, len);
	return event(r);
}

static int on_end(void *ctx)
{
	struct result *r = ctx;

	buf_str(&r->log, "{end}");
	return event(r);
}

static const struct mlc_mp_callbacks recorder = { on_begin, on_data, on_end };

/*
 * Parse body with boundary b: the first split bytes as one piece, then
 * the rest in pieces of step bytes (0: all at once).  r is reset first.
 */
static void run(const char *b, const char *body, size_t len, size_t split, size_t step,
		struct result *r)
{
	struct mlc_mp *p = mlc_mp_new(b, &recorder, r);
	size_t off = 0;

	r->rc = 0;
	r->log.len = 0;
	buf_add(&r->log, "", 0);
	r->empty_calls = 0;
	r->events = 0;
	while (!r->rc && off < len) {
		size_t n = off < split ? split - off : step ? step : len - off;

		if (n > len - off)
			n = len - off;
		r->rc = mlc_mp_feed(p, body + off, n);
		off += n;
	}
	if (!r->rc)
		r->rc = mlc_mp_finish(p);
	snprintf(r->msg, sizeof(r->msg), "%s", mlc_mp_error(p));
	mlc_mp_free(p);
}

static int same(const struct result *a, const struct result *b)
{
	return a->rc == b->rc && !strcmp(a->msg, b->msg) && a->log.len == b->log.len &&
	       !memcmp(a->log.p, b->log.p, a->log.len);
}

/* Print a log in a diagnostic, with bytes outside printable ASCII as \xNN. */
static void diag_log(const char *label, const char *s, size_t n)
{
	struct buf out = { NULL, 0, 0 };
	char hex[8];

	buf_add(&out, "", 0);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c >= 0x7f) {
			snprintf(hex, sizeof(hex), "\\x%02x", c);
			buf_str(&out, hex);
		} else {
			buf_add(&out, s + i, 1);
		}
	}
	diag("%s: %s", label, out.p);
	free(out.p);
}

/*
 * Parse body whole into *whole, then split at every offset and byte by
 * byte; returns how many of those differ from the whole parse (and
 * notes the first in a diagnostic).
 */
static int split_mismatches(const char *b, const char *body, size_t len, struct result *whole)
{
	struct result r = { .stop_at = whole->stop_at };
	int bad = 0;

	run(b, body, len, 0, 0, whole);
	for (size_t k = 0; k <= len + 1; k++) {
		if (k <= len)
			run(b, body, len, k, 0, &r);
		else
			run(b, body, len, 0, 1, &r);
		if (!same(&r, whole) && !bad++) {
			diag("first difference when split at %zu:", k);
			diag_log("split", r.log.p, r.log.len);
			diag("message: %s", r.msg);
		}
		if (r.empty_calls)
			bad++;
	}
	free(r.log.p);
	return bad;
}

/* body parses into the log want, however it is split. */
static void parses(const char *title, const char *b, const char *body, size_t len,
		   const char *want, size_t wantlen)
{
	struct result r = { 0 };
	int bad = split_mismatches(b, body, len, &r);

	if (!ok(r.rc == 0, "%s: accepted", title))
		diag("message: %s", r.msg);
	if (!ok(r.log.len == wantlen && !memcmp(r.log.p, want, wantlen), "%s: parts and data", title)) {
		diag_log("got", r.log.p, r.log.len);
		diag_log("expected", want, wantlen);
	}
	ok(!bad, "%s: same result split at each of %zu offsets and byte by byte", title, len + 1);
	free(r.log.p);
}

/* body is refused with the message want, however it is split. */
static void refused(const char *title, const char *b, const char *body, size_t len,
		    const char *want)
{
	struct result r = { 0 };
	int bad = split_mismatches(b, body, len, &r);

	ok(r.rc == MLC_MP_ERROR, "%s: refused", title);
	is_str(r.msg, want, "%s: message", title);
	ok(!bad, "%s: same message split at each offset and byte by byte", title);
	free(r.log.p);
}

/* Bodies captured from the clients themselves (same model.pkl bytes). */
static const char requests_body[] =
	"--927c1cc6cc86f568788ba76820fbe9bb\r\n"
	"Content-Disposition: form-data; name=\"file\"; filename=\"model.pkl\"\r\n"
	"\r\n"
	"PK\x03\x04\r\n--\0bin\r\n"
	"\r\n--927c1cc6cc86f568788ba76820fbe9bb\r\n"
	"Content-Disposition: form-data; name=\"file_kind\"\r\n"
	"\r\n"
	"model"
	"\r\n--927c1cc6cc86f568788ba76820fbe9bb--\r\n";

static const char curl_body[] =
	"--------------------------79b91b2b393d00a4\r\n"
	"Content-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n"
	"Content-Type: application/octet-stream\r\n"
	"\r\n"
	"PK\x03\x04\r\n--\0bin\r\n"
	"\r\n--------------------------79b91b2b393d00a4\r\n"
	"Content-Disposition: form-data; name=\"file_kind\"\r\n"
	"\r\n"
	"model"
	"\r\n--------------------------79b91b2b393d00a4--\r\n";

static void test_clients(void)
{
	char b[MLC_MP_MAX_BOUNDARY + 1], msg[128];

	ok(mlc_mp_boundary("multipart/form-data; boundary=927c1cc6cc86f568788ba76820fbe9bb",
			   b, sizeof(b), msg, sizeof(msg)) == 0 &&
	   !strcmp(b, "927c1cc6cc86f568788ba76820fbe9bb"),
	   "python-requests: boundary taken from its Content-Type");
	parses("python-requests files={file, file_kind}", b, BIN(requests_body),
	       BIN("{file filename=model.pkl}PK\x03\x04\r\n--\0bin\r\n{end}{file_kind}model{end}"));

	ok(mlc_mp_boundary("multipart/form-data; boundary=------------------------79b91b2b393d00a4",
			   b, sizeof(b), msg, sizeof(msg)) == 0 &&
	   !strcmp(b, "------------------------79b91b2b393d00a4"),
	   "curl -F: boundary taken from its Content-Type");
	parses("curl -F file=@x -F file_kind=model", b, BIN(curl_body),
	       BIN("{file filename=x type=application/octet-stream}PK\x03\x04\r\n--\0bin\r\n"
		   "{end}{file_kind}model{end}"));

	parses("a browser form with the text field before the file",
	       "----WebKitFormBoundary7MA4YWxkTrZu0gW",
	       BIN("------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n"
		   "Content-Disposition: form-data; name=\"file_kind\"\r\n\r\n"
		   "data\r\n"
		   "------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n"
		   "Content-Disposition: form-data; name=\"file\"; filename=\"train.csv\"\r\n"
		   "Content-Type: text/csv\r\n\r\n"
		   "a,b\r\n1,2\r\n"
		   "\r\n------WebKitFormBoundary7MA4YWxkTrZu0gW--\r\n"),
	       BIN("{file_kind}data{end}{file filename=train.csv type=text/csv}a,b\r\n1,2\r\n{end}"));
}

static void test_data(void)
{
	parses("CR, LF, \"--\" and partial delimiters in the data are data", "XyZ",
	       BIN("--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n"
		   "\r\r\n\n--\r\n-\r\n--\r\n--X\r\n--Xy\r\n--XyQ--XyZ\n--XyZ\r\r\n--Xy\r"
		   "\r\n--XyZ--"),
	       BIN("{f}\r\r\n\n--\r\n-\r\n--\r\n--X\r\n--Xy\r\n--XyQ--XyZ\n--XyZ\r\r\n--Xy\r{end}"));
	parses("data ending in a partial delimiter is completed by the real one", "XyZ",
	       BIN("--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n"
		   "abc\r\n--Xy\r\n--XyZ--\r\n"),
	       BIN("{f}abc\r\n--Xy{end}"));
	parses("NUL and high bytes in the data are data", "XyZ",
	       BIN("--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n"
		   "\0\xff\xfe\0\r\0\n\r\n--XyZ--"),
	       BIN("{f}\0\xff\xfe\0\r\0\n{end}"));
	parses("an empty part gets no part_data call", "XyZ",
	       BIN("--XyZ\r\nContent-Disposition: form-data; name=\"empty\"\r\n\r\n"
		   "\r\n--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nx"
		   "\r\n--XyZ--"),
	       BIN("{empty}{end}{f}x{end}"));
	parses("a closing delimiter first means no parts", "XyZ", BIN("--XyZ--\r\n"), BIN(""));
	/* Not a boundary RFC 2046 allows (it has a CR), but mlc_mp_new takes
	 * it: a broken match must fall back to the overlap, not to zero. */
	parses("a self-overlapping boundary is found after a broken match", "a\r\n--a\r\n--b",
	       BIN("--a\r\n--a\r\n--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n"
		   "\r\n--a\r\n--a\r\n--a\r\n--b--"),
	       BIN("{f}\r\n--a{end}"));
}

static void test_framing(void)
{
	parses("a preamble before the first boundary is ignored", "XyZ",
	       BIN("This is a preamble.\r\nIt mentions --XyZ but not on its own line.\r\n"
		   "--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nv\r\n--XyZ--"),
	       BIN("{f}v{end}"));
	parses("a body starting with CRLF before the first boundary", "XyZ",
	       BIN("\r\n--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nv\r\n--XyZ--"),
	       BIN("{f}v{end}"));
	parses("the epilogue after the closing boundary is ignored", "XyZ",
	       BIN("--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nv\r\n--XyZ--\r\n"
		   "epilogue\r\n--XyZ\r\ngarbage\0\r\n--XyZx"),
	       BIN("{f}v{end}"));
	parses("transport padding after boundaries is allowed", "XyZ",
	       BIN("--XyZ \t \r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1"
		   "\r\n--XyZ\t\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\n2"
		   "\r\n--XyZ--  \r\n"),
	       BIN("{a}1{end}{b}2{end}"));
	parses("the closing boundary may end the body without CRLF", "XyZ",
	       BIN("--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nv\r\n--XyZ--"),
	       BIN("{f}v{end}"));

	refused("an empty body", "XyZ", BIN(""), "body ends before the first boundary");
	refused("a body without the boundary", "XyZ", BIN("hello\r\n--XyQ\r\n"),
		"body ends before the first boundary");
	refused("a body ending inside part data", "XyZ",
		BIN("--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nabc\r\n--Xy"),
		"body ends before the closing boundary");
	refused("a body ending inside part headers", "XyZ",
		BIN("--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n"),
		"body ends before the closing boundary");
	refused("a body ending after a boundary line", "XyZ",
		BIN("--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nv\r\n--XyZ"),
		"body ends before the closing boundary");
	refused("a body ending after half of \"--\"", "XyZ",
		BIN("--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nv\r\n--XyZ-"),
		"body ends before the closing boundary");
	refused("letters after a boundary", "XyZ", BIN("--XyZabc\r\n"),
		"boundary line 1 is followed by other bytes than CRLF or \"--\"");
	refused("the full boundary followed by letters inside data", "XyZ",
		BIN("--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nv\r\n--XyZW\r\n"),
		"boundary line 2 is followed by other bytes than CRLF or \"--\"");
	refused("one dash then other bytes after a boundary", "XyZ", BIN("--XyZ-x"),
		"boundary line 1 is followed by other bytes than CRLF or \"--\"");
	refused("padding then letters after a boundary", "XyZ", BIN("--XyZ \tx\r\n"),
		"boundary line 1 is followed by other bytes than CRLF or \"--\"");
	refused("padding then \"--\" after a boundary", "XyZ", BIN("--XyZ --"),
		"boundary line 1 is followed by other bytes than CRLF or \"--\"");
	refused("a boundary line ending in a bare LF", "XyZ", BIN("--XyZ\nContent-Disposition: x\r\n"),
		"boundary line 1 is followed by other bytes than CRLF or \"--\"");
	refused("a boundary line ending in CR CR LF", "XyZ", BIN("--XyZ\r\r\n"),
		"boundary line 1 is followed by other bytes than CRLF or \"--\"");
}

static void test_headers(void)
{
	parses("header and parameter names are case-insensitive", "XyZ",
	       BIN("--XyZ\r\ncontent-DISPOSITION: FORM-DATA; NAME=\"a\"; FileName=\"b.csv\"\r\n"
		   "CONTENT-TYPE: text/csv\r\n\r\nv\r\n--XyZ--"),
	       BIN("{a filename=b.csv type=text/csv}v{end}"));
	parses("unquoted parameter values", "XyZ",
	       BIN("--XyZ\r\nContent-Disposition: form-data;name=file;filename=x.csv\r\n\r\nv\r\n--XyZ--"),
	       BIN("{file filename=x.csv}v{end}"));
	parses("spaces around ';' and '=' and after the colon", "XyZ",
	       BIN("--XyZ\r\nContent-Disposition:form-data ;  name = \"a\" ;\tfilename=\"b\" ;\r\n"
		   "Content-Type:   text/plain; charset=utf-8  \r\n\r\nv\r\n--XyZ--"),
	       BIN("{a filename=b type=text/plain; charset=utf-8}v{end}"));
	parses("\\\" and \\\\ in quoted values are unescaped", "XyZ",
	       BIN("--XyZ\r\nContent-Disposition: form-data; name=\"a\\\"b\"; "
		   "filename=\"say \\\"hi\\\" \\\\o/.csv\"\r\n\r\nv\r\n--XyZ--"),
	       BIN("{a\"b filename=say \"hi\" \\o/.csv}v{end}"));
	parses("a backslash before another byte is kept (Windows paths)", "XyZ",
	       BIN("--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"C:\\dir\\x.csv\"\r\n"
		   "\r\nv\r\n--XyZ--"),
	       BIN("{f filename=C:\\dir\\x.csv}v{end}"));
	parses("';' and '=' inside quotes are part of the value", "XyZ",
	       BIN("--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a;b=c.csv\"\r\n"
		   "\r\nv\r\n--XyZ--"),
	       BIN("{f filename=a;b=c.csv}v{end}"));
	parses("filename= is not percent-decoded", "XyZ",
	       BIN("--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a%22b%20c\"\r\n"
		   "\r\nv\r\n--XyZ--"),
	       BIN("{f filename=a%22b%20c}v{end}"));
	parses("an empty filename is kept as present", "XyZ",
	       BIN("--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"\"\r\n"
		   "\r\n\r\n--XyZ--"),
	       BIN("{f filename=}{end}"));
	parses("unknown headers and parameters are ignored", "XyZ",
	       BIN("--XyZ\r\nX-Thing: 1\r\nContent-Transfer-Encoding: binary\r\n"
		   "Content-Disposition: form-data; size=3; name=\"f\"; creation-date=\"x;y\"\r\n"
		   "\r\nv\r\n--XyZ--"),
	       BIN("{f}v{end}"));
	parses("folded header lines are unfolded", "XyZ",
	       BIN("--XyZ\r\nContent-Disposition: form-data;\r\n name=\"f\";\r\n\tfilename=\"x\"\r\n"
		   "\r\nv\r\n--XyZ--"),
	       BIN("{f filename=x}v{end}"));
	parses("filename*=UTF-8'' is percent-decoded", "XyZ",
	       BIN("--XyZ\r\nContent-Disposition: form-data; name=\"f\"; "
		   "filename*=UTF-8''%E2%82%AC%20rates.csv\r\n\r\nv\r\n--XyZ--"),
	       BIN("{f filename=\xe2\x82\xac rates.csv}v{end}"));
	parses("filename* wins over a filename before it", "XyZ",
	       BIN("--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"EUR rates.csv\"; "
		   "filename*=utf-8'en'%E2%82%AC.csv\r\n\r\nv\r\n--XyZ--"),
	       BIN("{f filename=\xe2\x82\xac.csv}v{end}"));
	parses("filename* wins over a filename after it", "XyZ",
	       BIN("--XyZ\r\nContent-Disposition: form-data; name=\"f\"; "
		   "FILENAME*=UTF-8''a%2Fb; filename=\"ab\"\r\n\r\nv\r\n--XyZ--"),
	       BIN("{f filename=a/b}v{end}"));
	parses("a quoted filename* is accepted too", "XyZ",
	       BIN("--XyZ\r\nContent-Disposition: form-data; name=\"f\"; "
		   "filename*=\"UTF-8''x%20y\"\r\n\r\nv\r\n--XyZ--"),
	       BIN("{f filename=x y}v{end}"));
}

/* A body with one part whose Content-Disposition parameters are cd. */
static void refused_cd(const char *title, const char *cd, const char *want)
{
	char body[4096];
	int n = snprintf(body, sizeof(body),
			 "--XyZ\r\nContent-Disposition: %s\r\n\r\nv\r\n--XyZ--\r\n", cd);

	refused(title, "XyZ", body, (size_t)n, want);
}

static void test_header_errors(void)
{
	refused("a part without Content-Disposition", "XyZ",
		BIN("--XyZ\r\nContent-Type: text/csv\r\n\r\nv\r\n--XyZ--"),
		"part 1 has no Content-Disposition header");
	refused("a part with an empty header block", "XyZ",
		BIN("--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--XyZ\r\n\r\nv\r\n--XyZ--"),
		"part 2 has no Content-Disposition header");
	refused_cd("a disposition other than form-data", "attachment; name=\"f\"",
		   "part 1 has Content-Disposition attachment, not form-data");
	refused_cd("a disposition without a type", "; name=\"f\"",
		   "part 1 has a malformed Content-Disposition header");
	refused_cd("no name parameter", "form-data; filename=\"x.csv\"",
		   "part 1 has no name parameter in its Content-Disposition");
	refused_cd("an empty name", "form-data; name=\"\"", "part 1 has an empty name");
	refused_cd("name given twice", "form-data; name=a; Name=b",
		   "part 1 repeats the Name parameter");
	refused_cd("filename given twice", "form-data; name=a; filename=b; filename=c",
		   "part 1 repeats the filename parameter");
	refused_cd("an unterminated quoted value", "form-data; name=\"abc",
		   "part 1 has a malformed Content-Disposition header");
	refused_cd("text after a quoted value", "form-data; name=\"a\"b",
		   "part 1 has a malformed Content-Disposition header");
	refused_cd("a parameter without '='", "form-data; name",
		   "part 1 has a malformed Content-Disposition header");
	refused_cd("a parameter with an empty bare value", "form-data; name=",
		   "part 1 has a malformed Content-Disposition header");
	refused_cd("filename* in a charset other than UTF-8", "form-data; name=f; filename*=ISO-8859-1''caf%E9",
		   "part 1 filename* is in ISO-8859-1; only UTF-8 is supported");
	refused_cd("filename* without the charset quotes", "form-data; name=f; filename*=x.csv",
		   "part 1 has a malformed filename* parameter");
	refused_cd("filename* decoding to a NUL byte", "form-data; name=f; filename*=UTF-8''a%00b",
		   "part 1 filename* decodes to a NUL byte");
	refused("Content-Disposition given twice", "XyZ",
		BIN("--XyZ\r\nContent-Disposition: form-data; name=a\r\n"
		    "content-disposition: form-data; name=b\r\n\r\nv\r\n--XyZ--"),
		"part 1 has more than one content-disposition header");
	refused("Content-Type given twice", "XyZ",
		BIN("--XyZ\r\nContent-Disposition: form-data; name=a\r\nContent-Type: a/b\r\n"
		    "Content-Type: c/d\r\n\r\nv\r\n--XyZ--"),
		"part 1 has more than one Content-Type header");
	refused("a header line without a colon", "XyZ",
		BIN("--XyZ\r\nContent-Disposition: form-data; name=a\r\nnonsense\r\n\r\nv\r\n--XyZ--"),
		"part 1 has a malformed header line");
	refused("a space before the colon", "XyZ",
		BIN("--XyZ\r\nContent-Disposition : form-data; name=a\r\n\r\nv\r\n--XyZ--"),
		"part 1 has a malformed header line");
	refused("a continuation line first in the block", "XyZ",
		BIN("--XyZ\r\n Content-Disposition: form-data; name=a\r\n\r\nv\r\n--XyZ--"),
		"part 1 has a malformed header line");
	refused("a NUL byte in the headers", "XyZ",
		BIN("--XyZ\r\nContent-Disposition: form-data; name=\"a\0b\"\r\n\r\nv\r\n--XyZ--"),
		"part 1 headers contain a NUL byte");
	refused("header lines ending in bare LF", "XyZ",
		BIN("--XyZ\r\nContent-Disposition: form-data; name=a\n\nv\r\n--XyZ--"),
		"part 1 header line ends in a bare LF, not CRLF");
	refused("a CR without LF in the headers", "XyZ",
		BIN("--XyZ\r\nContent-Disposition: form-data;\rname=a\r\n\r\nv\r\n--XyZ--"),
		"part 1 headers contain a CR without LF");
}

/* A body of one part: "Content-Disposition: form-data; name=" then
 * namelen 'n's, then an X-Pad header making the block hdrlen bytes
 * (0: no padding), the Content-Type ctype (NULL: none), and the
 * filename param fn (NULL: none).  Caller frees. */
static char *long_body(size_t namelen, size_t hdrlen, const char *fn, const char *ctype,
		       size_t *len)
{
	struct buf b = { NULL, 0, 0 };
	size_t block_start;

	buf_str(&b, "--B\r\n");
	block_start = b.len;
	buf_str(&b, "Content-Disposition: form-data; name=");
	for (size_t i = 0; i < namelen; i++)
		buf_str(&b, "n");
	if (fn) {
		buf_str(&b, "; filename=");
		buf_str(&b, fn);
	}
	buf_str(&b, "\r\n");
	if (ctype) {
		buf_str(&b, "Content-Type: ");
		buf_str(&b, ctype);
		buf_str(&b, "\r\n");
	}
	if (hdrlen) {
		size_t pad = hdrlen - (b.len - block_start) - strlen("X-Pad: \r\n\r\n");

		buf_str(&b, "X-Pad: ");
		for (size_t i = 0; i < pad; i++)
			buf_str(&b, "p");
		buf_str(&b, "\r\n");
	}
	buf_str(&b, "\r\nv\r\n--B--");
	*len = b.len;
	return b.p;
}

/* parse body with boundary "B" whole; returns the result code, message in r. */
static int run_once(const char *body, size_t len, struct result *r)
{
	run("B", body, len, 0, 0, r);
	return r->rc;
}

/* A string of n copies of c (caller frees). */
static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void test_limits(void)
{
	struct result r = { 0 };
	char *body, *s;
	size_t len;

	body = long_body(MLC_MP_MAX_NAME - 1, 0, NULL, NULL, &len);
	ok(run_once(body, len, &r) == 0, "a name of MLC_MP_MAX_NAME - 1 bytes is accepted");
	free(body);
	body = long_body(MLC_MP_MAX_NAME, 0, NULL, NULL, &len);
	run_once(body, len, &r);
	is_str(r.msg, "part 1 name is longer than 255 bytes", "a longer name is refused, not truncated");
	free(body);

	s = repeat('f', MLC_MP_MAX_FILENAME - 1);
	body = long_body(1, 0, s, NULL, &len);
	ok(run_once(body, len, &r) == 0 && strstr(r.log.p, s),
	   "a filename of MLC_MP_MAX_FILENAME - 1 bytes is accepted whole");
	free(body);
	free(s);
	s = repeat('f', MLC_MP_MAX_FILENAME);
	body = long_body(1, 0, s, NULL, &len);
	run_once(body, len, &r);
	is_str(r.msg, "part 1 filename is longer than 1023 bytes",
	       "a longer filename is refused, not truncated");
	free(body);
	free(s);

	/* Encoded names may be three times as long as their decoded form; the
	 * limit is on the decoded bytes.  341 euro signs are 1023 bytes. */
	struct buf enc = { NULL, 0, 0 };

	buf_str(&enc, "--B\r\nContent-Disposition: form-data; name=n; filename*=UTF-8''");
	for (int i = 0; i < 341; i++)
		buf_str(&enc, "%E2%82%AC");
	buf_str(&enc, "\r\n\r\nv\r\n--B--");
	ok(run_once(enc.p, enc.len, &r) == 0,
	   "a filename* of 3069 encoded bytes decoding to 1023 is accepted");
	enc.len = 0;
	buf_str(&enc, "--B\r\nContent-Disposition: form-data; name=n; filename*=UTF-8''");
	for (int i = 0; i < 342; i++)
		buf_str(&enc, "%E2%82%AC");
	buf_str(&enc, "\r\n\r\nv\r\n--B--");
	run_once(enc.p, enc.len, &r);
	is_str(r.msg, "part 1 filename is longer than 1023 bytes",
	       "a filename* decoding to 1026 bytes is refused");
	free(enc.p);

	s = repeat('t', MLC_MP_MAX_CTYPE - 1);
	body = long_body(1, 0, NULL, s, &len);
	ok(run_once(body, len, &r) == 0, "a Content-Type of MLC_MP_MAX_CTYPE - 1 bytes is accepted");
	free(body);
	free(s);
	s = repeat('t', MLC_MP_MAX_CTYPE);
	body = long_body(1, 0, NULL, s, &len);
	run_once(body, len, &r);
	is_str(r.msg, "part 1 Content-Type is longer than 255 bytes",
	       "a longer Content-Type is refused, not truncated");
	free(body);
	free(s);

	body = long_body(1, MLC_MP_MAX_HEADERS, NULL, NULL, &len);
	ok(run_once(body, len, &r) == 0, "a header block of exactly MLC_MP_MAX_HEADERS bytes is accepted");
	free(body);
	body = long_body(1, MLC_MP_MAX_HEADERS + 1, NULL, NULL, &len);
	run_once(body, len, &r);
	is_str(r.msg, "part 1 header block is longer than 8192 bytes",
	       "a header block one byte longer is refused");
	free(body);

	free(r.log.p);
}

/* A body of n parts named p1..pn (caller frees). */
static char *many_parts(int n, size_t *len)
{
	struct buf b = { NULL, 0, 0 };
	char line[128];

	buf_add(&b, "", 0);
	for (int i = 1; i <= n; i++) {
		snprintf(line, sizeof(line),
			 "--B\r\nContent-Disposition: form-data; name=p%d\r\n\r\n%d\r\n", i, i);
		buf_str(&b, line);
	}
	buf_str(&b, "--B--\r\n");
	*len = b.len;
	return b.p;
}

static void test_part_count(void)
{
	struct result r = { 0 };
	size_t len;
	char *body = many_parts(MLC_MP_MAX_PARTS, &len);

	ok(run_once(body, len, &r) == 0 && strstr(r.log.p, "{p16}16{end}"),
	   "MLC_MP_MAX_PARTS parts are accepted");
	free(body);
	body = many_parts(MLC_MP_MAX_PARTS + 1, &len);
	refused("one part more than MLC_MP_MAX_PARTS", "B", body, len, "body has more than 16 parts");
	free(body);
	free(r.log.p);
}

static void test_callbacks(void)
{
	static const char body[] =
		"--B\r\nContent-Disposition: form-data; name=a\r\n\r\n1234\r\n"
		"--B\r\nContent-Disposition: form-data; name=b\r\n\r\n5\r\n--B--";
	const char *what[] = { "part_begin", "part_data", "part_end" };
	struct result r = { 0 };
	struct mlc_mp *p;

	/* Events 1, 2, 3 are the first part's begin, data and end when the
	 * body comes in one piece (split, the data would come in more calls). */
	for (int i = 1; i <= 3; i++) {
		r.stop_at = i;
		run("B", BIN(body), 0, 0, &r);
		ok(r.rc == MLC_MP_ABORTED && r.events == i,
		   "a nonzero return from %s stops the parse with MLC_MP_ABORTED", what[i - 1]);
	}
	r.stop_at = 0;

	p = mlc_mp_new("B", &recorder, &r);
	r.stop_at = 1;
	r.events = 0;
	ok(mlc_mp_feed(p, BIN(body)) == MLC_MP_ABORTED && mlc_mp_feed(p, "x", 1) == MLC_MP_ABORTED &&
	   mlc_mp_finish(p) == MLC_MP_ABORTED && r.events == 1,
	   "after an abort every call returns MLC_MP_ABORTED and no callback runs");
	mlc_mp_free(p);

	p = mlc_mp_new("B", NULL, NULL);
	ok(mlc_mp_feed(p, BIN(body)) == 0 && mlc_mp_finish(p) == 0,
	   "a parser without callbacks still checks the body");
	mlc_mp_free(p);

	p = mlc_mp_new("B", &recorder, &r);
	ok(mlc_mp_feed(p, BIN("--B\r\nbad\r\n\r\n")) == MLC_MP_ERROR &&
	   mlc_mp_feed(p, BIN(body)) == MLC_MP_ERROR && mlc_mp_finish(p) == MLC_MP_ERROR &&
	   !strcmp(mlc_mp_error(p), "part 1 has a malformed header line"),
	   "after an error every call returns MLC_MP_ERROR and the message stays");
	mlc_mp_free(p);

	p = mlc_mp_new("", &recorder, &r);
	ok(mlc_mp_feed(p, BIN(body)) == MLC_MP_ERROR &&
	   !strcmp(mlc_mp_error(p), "multipart boundary must be 1 to 70 bytes"),
	   "a parser given an empty boundary fails every call");
	mlc_mp_free(p);
	free(r.log.p);
}

/* mlc_mp_boundary(ct) gives want. */
static void boundary_is(const char *title, const char *ct, const char *want)
{
	char b[MLC_MP_MAX_BOUNDARY + 1] = "", msg[128] = "";

	if (!ok(mlc_mp_boundary(ct, b, sizeof(b), msg, sizeof(msg)) == 0, "%s: accepted", title))
		diag("message: %s", msg);
	is_str(b, want, "%s: boundary", title);
}

/* mlc_mp_boundary(ct) is refused with want. */
static void boundary_refused(const char *title, const char *ct, const char *want)
{
	char b[MLC_MP_MAX_BOUNDARY + 1] = "", msg[128] = "";

	ok(mlc_mp_boundary(ct, b, sizeof(b), msg, sizeof(msg)) == -1, "%s: refused", title);
	is_str(msg, want, "%s: message", title);
}

static void test_boundary(void)
{
	char b[8], msg[128], ct[200];
	char *b70 = repeat('b', 70), *b71 = repeat('b', 71);

	boundary_is("a plain boundary", "multipart/form-data; boundary=abc123", "abc123");
	boundary_is("a quoted boundary", "multipart/form-data; boundary=\"a b:c?\"", "a b:c?");
	boundary_is("media type and parameter name in any case",
		    "Multipart/Form-Data; BOUNDARY=xyz", "xyz");
	boundary_is("other parameters before and after are ignored",
		    "multipart/form-data; charset=utf-8; boundary=\"q\"; x=\"a;b\"", "q");
	boundary_is("no space after ';'", "multipart/form-data;boundary=x", "x");
	boundary_is("spaces around the value", "  multipart/form-data ;  boundary = x  ", "x");
	boundary_is("all RFC 2046 boundary characters",
		    "multipart/form-data; boundary=\"09azAZ'()+_,-./:=? x\"", "09azAZ'()+_,-./:=? x");
	snprintf(ct, sizeof(ct), "multipart/form-data; boundary=%s", b70);
	boundary_is("a 70-byte boundary", ct, b70);

	boundary_refused("no Content-Type at all", NULL,
			 "request has no Content-Type; expected multipart/form-data");
	boundary_refused("an empty Content-Type", "", "Content-Type is not multipart/form-data");
	boundary_refused("application/json", "application/json",
			 "Content-Type is application/json, not multipart/form-data");
	boundary_refused("multipart/mixed", "multipart/mixed; boundary=x",
			 "Content-Type is multipart/mixed, not multipart/form-data");
	boundary_refused("a media type with extra letters", "multipart/form-datax; boundary=x",
			 "Content-Type is multipart/form-datax, not multipart/form-data");
	boundary_refused("no boundary parameter", "multipart/form-data; charset=utf-8",
			 "Content-Type has no boundary parameter");
	boundary_refused("no parameters", "multipart/form-data", "Content-Type has no boundary parameter");
	boundary_refused("a parameter name without '='", "multipart/form-data; boundary",
			 "Content-Type has malformed parameters");
	boundary_refused("text after the media type without ';'", "multipart/form-data boundary=x",
			 "Content-Type has malformed parameters");
	boundary_refused("boundary given twice", "multipart/form-data; boundary=a; Boundary=b",
			 "Content-Type has more than one boundary parameter");
	boundary_refused("an empty quoted boundary", "multipart/form-data; boundary=\"\"",
			 "multipart boundary is empty");
	snprintf(ct, sizeof(ct), "multipart/form-data; boundary=%s", b71);
	boundary_refused("a 71-byte boundary", ct, "multipart boundary is longer than 70 bytes");
	boundary_refused("a boundary with '@'", "multipart/form-data; boundary=a@b",
			 "multipart boundary contains a character RFC 2046 does not allow");
	boundary_refused("a boundary with a backslash", "multipart/form-data; boundary=\"a\\\\b\"",
			 "multipart boundary contains a character RFC 2046 does not allow");
	boundary_refused("a boundary ending in a space", "multipart/form-data; boundary=\"ab \"",
			 "multipart boundary ends in a space");

	ok(mlc_mp_boundary("multipart/form-data; boundary=12345678", b, sizeof(b), msg,
			   sizeof(msg)) == -1 &&
	   !strcmp(msg, "multipart boundary does not fit the caller's buffer"),
	   "a boundary longer than the caller's buffer is refused, not truncated");
	free(b70);
	free(b71);
}

/* FNV-1a, to compare 10 MB of data without keeping a copy. */
static uint64_t fnv(uint64_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

struct digest {
	uint64_t hash;
	size_t len;
	size_t max_heap;	/* largest heap in use seen during the parse */
	size_t base_heap;
};

static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

static int digest_data(void *ctx, const char *data, size_t len)
{
	struct digest *d = ctx;
	size_t h = heap_in_use();

	d->hash = fnv(d->hash, data, len);
	d->len += len;
	if (h > d->max_heap)
		d->max_heap = h;
	return 0;
}

/* Tricky 10 MiB of data: pseudo-random bytes, with CR, LF, dashes and
 * prefixes of the delimiter ("\r\n--" + boundary) scattered through. */
static char *tricky_data(size_t n, const char *delim)
{
	char *d = malloc(n);
	uint32_t x = 2463534242u;
	size_t dl = strlen(delim);

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		d[i] = (char)(x & 0xff);
		if ((x >> 8) % 97 == 0 && i + dl < n) {
			size_t k = 1 + (x >> 16) % (dl - 1);	/* never the whole delimiter */

			memcpy(d + i, delim, k);
			d[i + k] = (char)(delim[k] ^ 1);	/* break the match */
			i += k;
		}
	}
	return d;
}

static void test_large(void)
{
	const size_t n = 10 << 20, chunk = 64 << 10;
	const char *head = "--LargeBodyBoundary0123456789\r\n"
			   "Content-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\r\n";
	const char *tail = "\r\n--LargeBodyBoundary0123456789--\r\n";
	char *data = tricky_data(n, "\r\n--LargeBodyBoundary0123456789");
	size_t hl = strlen(head), tl = strlen(tail), total = hl + n + tl;
	char *body = malloc(total);
	struct mlc_mp_callbacks cb = { NULL, digest_data, NULL };
	struct digest d = { 0xcbf29ce484222325ULL, 0, 0, 0 };
	uint64_t want = fnv(0xcbf29ce484222325ULL, data, n);
	struct mlc_mp *p;
	int rc = 0;

	memcpy(body, head, hl);
	memcpy(body + hl, data, n);
	memcpy(body + hl + n, tail, tl);
	free(data);
	p = mlc_mp_new("LargeBodyBoundary0123456789", &cb, &d);
	d.base_heap = heap_in_use();
	for (size_t off = 0; !rc && off < total; off += chunk)
		rc = mlc_mp_feed(p, body + off, total - off < chunk ? total - off : chunk);
	if (!ok(!rc && mlc_mp_finish(p) == 0, "a 10 MiB body fed in 64 KiB chunks is accepted"))
		diag("message: %s", mlc_mp_error(p));
	is_int(d.len, n, "every byte of the 10 MiB part is delivered");
	ok(d.hash == want, "the delivered bytes are the part's bytes, in order");
	/* Under sanitizers or valgrind malloc is not glibc's, and mallinfo2
	 * sees nothing; say so rather than pass vacuously. */
	if (d.base_heap >= total)
		is_int(d.max_heap - d.base_heap, 0, "parsing 10 MiB allocates nothing after mlc_mp_new");
	else
		diag("skipped the heap check: glibc malloc statistics are not available here");
	mlc_mp_free(p);
	free(body);
}

int main(void)
{
	test_clients();
	test_data();
	test_framing();
	test_headers();
	test_header_errors();
	test_limits();
	test_part_count();
	test_callbacks();
	test_boundary();
	test_large();
	return done_testing();
}
