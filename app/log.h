/*
 * log.h - one line per event on stderr: UTC time, pid, level, request id,
 * message.  With a log file (mlc-api --log FILE, as scripts/mlc and the
 * shipped service files start it) stderr and stdout point at that file,
 * and mlc_log_reopen() switches them to a new file at the same path after
 * logrotate moved the old one away.
 */
#ifndef MLC_LOG_H
#define MLC_LOG_H

void mlc_log(const char *level, const char *reqid, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Append from now on to path (created with mode 0640 if missing): stdout
 * and stderr are made to point at it.  Returns -1 with errno set. */
int mlc_log_open(const char *path);

/* Open the log file's path again and switch stdout and stderr to it, then
 * log that.  Keeps the old file (and logs why) when the path cannot be
 * opened; does nothing without a log file. */
void mlc_log_reopen(void);

#endif
