/*
 * log.c - event log lines.
 */
#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

void mlc_log(const char *level, const char *reqid, const char *fmt, ...)
{
	char msg[1024], stamp[32];
	struct timeval tv;
	struct tm tm;
	va_list ap;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One fprintf per line so concurrent workers do not interleave. */
	fprintf(stderr, "%s.%06ldZ pid=%d %s req=%s %s\n", stamp, (long)tv.tv_usec,
		(int)getpid(), level, reqid && *reqid ? reqid : "-", msg);
}
