/*
 * log.h - one line per event on stderr (scripts/mlc sends it to
 * var/log/mlc-api.log): UTC time, pid, level, request id, message.
 */
#ifndef MLC_LOG_H
#define MLC_LOG_H

void mlc_log(const char *level, const char *reqid, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
