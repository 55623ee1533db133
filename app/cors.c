/*
 * cors.c - matching the Origin header against MLC_CORS_ORIGINS, and the
 * header names a preflight answer allows.
 */
#include <string.h>
#include <strings.h>

#include "cors.h"

static int is_list_sep(char c)
{
	return c == ' ' || c == '\t' || c == ',';
}

/* Printable ASCII without space or comma: safe to echo in a header. */
static int origin_ok(const char *o, size_t len)
{
	if (!len || len > MLC_CORS_MAX_ORIGIN)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)o[i] <= ' ' || (unsigned char)o[i] >= 0x7f || o[i] == ',')
			return 0;
	return 1;
}

enum mlc_cors mlc_cors_check(const char *list, const char *origin)
{
	size_t olen = origin ? strnlen(origin, MLC_CORS_MAX_ORIGIN + 1) : 0;
	int any_entry = 0, matched = 0;

	if (!list || !olen)
		return MLC_CORS_OFF;
	for (const char *p = list; *p; ) {
		size_t n, cmp;

		p += strspn(p, " \t,");
		for (n = 0; p[n] && !is_list_sep(p[n]); n++)
			;
		if (!n)
			break;
		any_entry = 1;
		if (n == 1 && *p == '*')
			return MLC_CORS_ANY;
		cmp = n > 1 && p[n - 1] == '/' ? n - 1 : n;
		if (!matched && cmp == olen && !strncasecmp(p, origin, olen))
			matched = 1;
		p += n;
	}
	if (!any_entry)
		return MLC_CORS_OFF;
	return matched && origin_ok(origin, olen) ? MLC_CORS_ORIGIN : MLC_CORS_DENIED;
}

/* An RFC 9110 tchar. */
static int is_tchar(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Is name[0..len) one of the ", "-separated entries of list (any case)? */
static int listed(const char *list, const char *name, size_t len)
{
	for (const char *p = list; *p; ) {
		size_t n = strcspn(p, ",");

		if (n == len && !strncasecmp(p, name, len))
			return 1;
		p += n;
		p += strspn(p, ", ");
	}
	return 0;
}

/* Append name[0..len) to the list in buf (used bytes so far) if it fits
 * whole with its separator and the terminator. */
static void append(char *buf, size_t cap, size_t *used, const char *name, size_t len)
{
	size_t sep = *used ? 2 : 0;

	if (listed(buf, name, len) || *used + sep + len + 1 > cap)
		return;
	memcpy(buf + *used, ", ", sep);
	memcpy(buf + *used + sep, name, len);
	*used += sep + len;
	buf[*used] = '\0';
}

void mlc_cors_allow_headers(const char *requested, char *buf, size_t cap)
{
	size_t used = 0;

	if (!cap)
		return;
	buf[0] = '\0';
	append(buf, cap, &used, "Authorization", 13);
	append(buf, cap, &used, "Content-Type", 12);
	for (const char *p = requested; p && *p; ) {
		size_t n = strcspn(p, ","), start = 0, end = n, i;

		while (start < end && (p[start] == ' ' || p[start] == '\t'))
			start++;
		while (end > start && (p[end - 1] == ' ' || p[end - 1] == '\t'))
			end--;
		for (i = start; i < end && is_tchar((unsigned char)p[i]); i++)
			;
		if (i == end && end > start && end - start <= MLC_CORS_MAX_HEADER_NAME)
			append(buf, cap, &used, p + start, end - start);
		/* Full: the shortest entry (", x") cannot fit any more. */
		if (used + 4 > cap)
			break;
		p += n;
		p += *p == ',';
	}
}
