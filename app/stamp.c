/*
 * stamp.c - identifiers and timestamps.
 */
#include <stdio.h>
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

void mlc_now_utc(char out[32])
{
	struct timeval tv;
	struct tm tm;
	char sec[24];

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(sec, sizeof(sec), "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(out, 32, "%s.%06ld", sec, (long)tv.tv_usec);
}

json_object *mlc_iso_time(const char *dt)
{
	char buf[40];
	size_t n;

	if (!dt)
		return NULL;
	n = strlen(dt);
	if (n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	memcpy(buf, dt, n);
	if (n > 10 && buf[10] == ' ')
		buf[10] = 'T';
	buf[n] = 'Z';
	buf[n + 1] = '\0';
	return json_object_new_string(buf);
}
