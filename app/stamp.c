/*
 * stamp.c - identifiers and timestamps.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>

#include "mlc.h"
#include "stamp.h"

void mlc_uuid4(char out[37])
{
	unsigned char b[16];
	size_t got = 0;
	ssize_t n;

	while (got < sizeof(b)) {
		n = getrandom(b + got, sizeof(b) - got, 0);
		if (n <= 0)
			mlc_die("getrandom failed");
		got += (size_t)n;
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
		 b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* The offset of every time the API writes.  Not "Z": Python's
 * datetime.fromisoformat refuses "Z" before 3.11, and "+00:00" is what
 * datetime.isoformat writes for UTC, as the Python MLConnector did. */
#define UTC_SUFFIX "+00:00"

json_object *mlc_iso_time(const char *dt)
{
	char buf[48];
	size_t n, cap = sizeof(buf) - sizeof(UTC_SUFFIX);

	if (!dt)
		return NULL;
	n = strlen(dt);
	if (n > cap)
		n = cap;
	memcpy(buf, dt, n);
	if (n > 10 && buf[10] == ' ')
		buf[10] = 'T';
	memcpy(buf + n, UTC_SUFFIX, sizeof(UTC_SUFFIX));
	return json_object_new_string(buf);
}

/* Read exactly n digits into *v; returns the position after them or NULL. */
static const char *digits(const char *s, int n, int *v)
{
	int i;

	*v = 0;
	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return NULL;
		*v = *v * 10 + (s[i] - '0');
	}
	return s + n;
}

/* Optional ".ffffff" (1 to 9 digits, kept to microseconds). */
static const char *fraction(const char *s, long *usec)
{
	long scale = 100000;

	*usec = 0;
	if (*s != '.' && *s != ',')
		return s;
	if (!isdigit((unsigned char)*++s))
		return NULL;
	for (; isdigit((unsigned char)*s); s++) {
		*usec += scale * (*s - '0');
		scale /= 10;
	}
	return s;
}

/* "Z", "+HH:MM", "-HHMM", "+HH" or nothing (UTC); offset in seconds. */
static const char *utc_offset(const char *s, long *off)
{
	int sign, hh, mm = 0;

	*off = 0;
	if (*s == 'Z' || *s == 'z')
		return s + 1;
	if (*s != '+' && *s != '-')
		return s;
	sign = *s == '-' ? -1 : 1;
	if (!(s = digits(s + 1, 2, &hh)))
		return NULL;
	if (*s == ':')
		s++;
	if (isdigit((unsigned char)*s) && !(s = digits(s, 2, &mm)))
		return NULL;
	if (hh > 23 || mm > 59)
		return NULL;
	*off = sign * (hh * 3600L + mm * 60L);
	return s;
}

int mlc_parse_iso8601(const char *s, char out[32])
{
	int y, mo, d, h, mi, sec;
	long usec, off;
	char wide[96];
	struct tm tm;
	time_t t;

	if (!(s = digits(s, 4, &y)) || *s++ != '-' || !(s = digits(s, 2, &mo)) || *s++ != '-' ||
	    !(s = digits(s, 2, &d)) || (*s != 'T' && *s != 't' && *s != ' ') ||
	    !(s = digits(s + 1, 2, &h)) || *s++ != ':' || !(s = digits(s, 2, &mi)) ||
	    *s++ != ':' || !(s = digits(s, 2, &sec)) || !(s = fraction(s, &usec)) ||
	    !(s = utc_offset(s, &off)) || *s)
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1000)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	/* timegm normalises 31 February into March: refuse such dates. */
	if (tm.tm_mday != d || tm.tm_mon != mo - 1)
		return -1;
	t -= off;
	if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 1000 || tm.tm_year + 1900 > 9999)
		return -1;
	/* The fields are in range by now; format wide, then copy. */
	snprintf(wide, sizeof(wide), "%04d-%02d-%02d %02d:%02d:%02d.%06ld", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, usec);
	memcpy(out, wide, 26);
	out[26] = '\0';
	return 0;
}
