/*
 * test-dbtarget.c - which database server MLC_DB_HOST, MLC_DB_SOCKET,
 * MLC_VAR and MLC_DB_PORT name, and how mlc-api reaches it.  The cases are
 * in t/unit/dbtarget-cases.txt, which t/0925-db-ops.t checks the Python
 * daemons against as well.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbtarget.h"
#include "tap.h"

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n'))
		*--e = '\0';
	return s;
}

static void check_case(char *line)
{
	char *f[5], *p = line, msg[512] = "", got[MLC_DB_PATH_MAX + 300];
	struct mlc_db_target t;
	int i, rc;

	for (i = 0; i < 5; i++) {
		char *bar = i < 4 ? strchr(p, '|') : NULL;

		if (i < 4 && !bar) {
			ok(0, "malformed case line: %s", line);
			return;
		}
		if (bar)
			*bar = '\0';
		f[i] = trim(p);
		p = bar ? bar + 1 : p;
	}
	rc = mlc_db_target(f[0], f[1], f[2], atol(f[3]), &t, msg, sizeof(msg));
	if (rc < 0)
		snprintf(got, sizeof(got), "error");
	else if (t.via == MLC_DB_VIA_SOCKET)
		snprintf(got, sizeof(got), "socket %s", t.socket);
	else
		snprintf(got, sizeof(got), "tcp %s %u", t.host, t.port);
	is_str(got, f[4], "MLC_DB_HOST='%s' MLC_DB_SOCKET='%s' MLC_VAR='%s' MLC_DB_PORT=%s: %s",
	       f[0], f[1], f[2], f[3], f[4]);
	if (rc < 0)
		ok(msg[0] != '\0', "  ... with a message for the operator (%s)", msg);
}

int main(void)
{
	const char *srcdir = getenv("srcdir");
	char path[4096], line[1024], msg[512];
	struct mlc_db_target t;
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "%s/t/unit/dbtarget-cases.txt", srcdir ? srcdir : ".");
	f = fopen(path, "r");
	ok(f != NULL, "the case table %s opens", path);
	if (!f)
		return done_testing();
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '#' || !trim(line)[0])
			continue;
		check_case(line);
		n++;
	}
	fclose(f);
	ok(n >= 10, "the table has its cases (%d)", n);

	/* Values that are not in the table. */
	ok(mlc_db_target(NULL, NULL, NULL, 3306, &t, msg, sizeof(msg)) == 0 &&
	   t.via == MLC_DB_VIA_SOCKET && !strcmp(t.socket, "var/run/mysqld.sock"),
	   "nothing set: the private server's socket under the default MLC_VAR (%s)", t.socket);
	ok(mlc_db_target("", "", "/v", 3306, &t, msg, sizeof(msg)) == 0 &&
	   t.via == MLC_DB_VIA_SOCKET && !strcmp(t.socket, "/v/run/mysqld.sock"),
	   "empty values count as unset");
	{
		char longsock[MLC_DB_PATH_MAX + 10];

		memset(longsock, 'x', sizeof(longsock) - 1);
		longsock[0] = '/';
		longsock[sizeof(longsock) - 1] = '\0';
		ok(mlc_db_target(NULL, longsock, "/v", 3306, &t, msg, sizeof(msg)) < 0,
		   "a socket path longer than the buffer is refused (%s)", msg);
	}
	return done_testing();
}
