/*
 * log.c - event log lines, and the log file they go to.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* The log file's path; empty when logging to the inherited stderr. */
static char log_path[4096];

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

/* Open path for appending and make it stdout and stderr.  O_APPEND keeps
 * the lines of the master and its workers whole in the shared file. */
static int switch_to(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);

	if (fd < 0)
		return -1;
	fflush(stdout);
	fflush(stderr);
	if (dup2(fd, STDERR_FILENO) < 0 || dup2(fd, STDOUT_FILENO) < 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	close(fd);
	return 0;
}

int mlc_log_open(const char *path)
{
	if (strlen(path) >= sizeof(log_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (switch_to(path) < 0)
		return -1;
	strcpy(log_path, path);
	return 0;
}

void mlc_log_reopen(void)
{
	if (!log_path[0])
		return;
	if (switch_to(log_path) < 0) {
		mlc_log("error", NULL, "cannot reopen the log file %s: %s; still writing to the old one",
			log_path, strerror(errno));
		return;
	}
	mlc_log("info", NULL, "reopened the log file %s", log_path);
}
