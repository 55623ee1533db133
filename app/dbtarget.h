/*
 * dbtarget.h - where the database is: one rule for every part of
 * MLConnector (mlc-api here, scripts/mlcpy/config.py for the spooler and
 * mlc-drift, db_resolve in scripts/mlc), so that they all reach the same
 * server the same way:
 *
 *   MLC_DB_SOCKET set          the unix socket at that path; MLC_DB_HOST
 *                              must then be empty or "localhost" (any
 *                              other host is a configuration error: the
 *                              two settings would name two servers)
 *   MLC_DB_HOST empty          the private server's socket,
 *                              $MLC_VAR/run/mysqld.sock
 *   MLC_DB_HOST=localhost      the local server's socket,
 *                              /run/mysqld/mysqld.sock (as the mariadb
 *                              client reads "localhost")
 *   any other MLC_DB_HOST      TCP to MLC_DB_HOST:MLC_DB_PORT (127.0.0.1
 *                              and ::1 too)
 */
#ifndef MLC_DBTARGET_H
#define MLC_DBTARGET_H

#include <stddef.h>

#define MLC_DB_SYSTEM_SOCKET "/run/mysqld/mysqld.sock"
#define MLC_DB_PATH_MAX 4096

enum mlc_db_via { MLC_DB_VIA_SOCKET, MLC_DB_VIA_TCP };

struct mlc_db_target {
	enum mlc_db_via via;
	char socket[MLC_DB_PATH_MAX];	/* MLC_DB_VIA_SOCKET */
	char host[256];			/* MLC_DB_VIA_TCP */
	unsigned port;			/* MLC_DB_VIA_TCP */
};

/* host, sock: MLC_DB_HOST and MLC_DB_SOCKET (NULL or "" when unset), var:
 * MLC_VAR.  Returns 0 with t filled, or -1 with a message for the
 * operator in msg (conflicting settings, a value too long). */
int mlc_db_target(const char *host, const char *sock, const char *var, long port,
		  struct mlc_db_target *t, char *msg, size_t msglen);

/* The same, from the configuration (MLC_DB_HOST, MLC_DB_SOCKET, MLC_VAR,
 * MLC_DB_PORT). */
int mlc_db_target_config(struct mlc_db_target *t, char *msg, size_t msglen);

#endif
