/*
 * dbtarget.c - the rule that says which server MLC_DB_HOST and
 * MLC_DB_SOCKET name, and how to reach it (see dbtarget.h).
 */
#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "dbtarget.h"

static int fits(char *dst, size_t cap, const char *src)
{
	return snprintf(dst, cap, "%s", src) < (int)cap;
}

int mlc_db_target(const char *host, const char *sock, const char *var, long port,
		  struct mlc_db_target *t, char *msg, size_t msglen)
{
	int local;

	host = host && *host ? host : NULL;
	sock = sock && *sock ? sock : NULL;
	local = host && !strcmp(host, "localhost");
	memset(t, 0, sizeof(*t));
	if (sock && host && !local) {
		snprintf(msg, msglen, "MLC_DB_HOST=%s and MLC_DB_SOCKET=%s name two database "
			 "servers; set only one of them", host, sock);
		return -1;
	}
	if (sock || !host || local) {
		t->via = MLC_DB_VIA_SOCKET;
		if (sock ? !fits(t->socket, sizeof(t->socket), sock)
		    : local ? !fits(t->socket, sizeof(t->socket), MLC_DB_SYSTEM_SOCKET)
		    : snprintf(t->socket, sizeof(t->socket), "%s/run/mysqld.sock",
			       var && *var ? var : "var") >= (int)sizeof(t->socket)) {
			snprintf(msg, msglen, "the database socket path is too long");
			return -1;
		}
		return 0;
	}
	if (port <= 0 || port > 65535) {
		snprintf(msg, msglen, "MLC_DB_PORT=%ld is not a TCP port", port);
		return -1;
	}
	t->via = MLC_DB_VIA_TCP;
	t->port = (unsigned)port;
	if (!fits(t->host, sizeof(t->host), host)) {
		snprintf(msg, msglen, "MLC_DB_HOST is too long");
		return -1;
	}
	return 0;
}

int mlc_db_target_config(struct mlc_db_target *t, char *msg, size_t msglen)
{
	return mlc_db_target(mlc_config_get("MLC_DB_HOST", NULL),
			     mlc_config_get("MLC_DB_SOCKET", NULL),
			     mlc_config_get("MLC_VAR", "var"),
			     mlc_config_long("MLC_DB_PORT", 3306), t, msg, msglen);
}
