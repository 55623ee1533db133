/*
 * caps.c - caps on deployments and trainings per installation and per
 * owner (see caps.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "caps.h"

struct cap_spec {
	const char *lock;	/* row of limit_locks */
	const char *total_key, *owner_key;
	long total_def, owner_def;
	const char *count_sql;	/* (in use, in use by the owner ?) */
	const char *what, *fix;
};

static const struct cap_spec specs[] = {
	[MLC_CAP_DEPLOYMENTS] = {
		"deployments", "MLC_MAX_DEPLOYMENTS", "MLC_MAX_DEPLOYMENTS_PER_OWNER", 100, 20,
		/* "not stopped", written so that the (desired, status) index
		 * serves it: a row whose desired is 'running' is never 'stopped'. */
		"SELECT COUNT(*), COALESCE(SUM(ownerid = ?), 0) FROM deployments "
		"WHERE desired = 'running' OR (desired = 'stopped' AND status <> 'stopped')",
		"deployments that are not stopped",
		"stop deployments that are no longer needed (DELETE /deployment/{id}; failed ones "
		"count until they are deleted too)" },
	[MLC_CAP_TRAININGS] = {
		"trainings", "MLC_MAX_TRAININGS", "MLC_MAX_TRAININGS_PER_OWNER", 50, 10,
		"SELECT COUNT(*), COALESCE(SUM(ownerid = ?), 0) FROM trainings "
		"WHERE status IN ('waiting', 'running')",
		"trainings waiting or running",
		"wait until some have finished" },
};

struct counts {
	long long total, owner;
};

static int count_row(void *ctx, char **c, const unsigned long *l, unsigned n)
{
	struct counts *k = ctx;

	(void)l;
	if (n >= 2) {
		k->total = c[0] ? atoll(c[0]) : 0;
		k->owner = c[1] ? atoll(c[1]) : 0;
	}
	return 1;
}

int mlc_cap_check(struct mlc_db *db, enum mlc_cap_kind kind, const char *owner, int lock,
		    struct mlc_err *err)
{
	const struct cap_spec *s = &specs[kind];
	long total_max = mlc_config_long(s->total_key, s->total_def);
	long owner_max = mlc_config_long(s->owner_key, s->owner_def);
	struct mlc_param key[] = { MLC_PSTR(s->lock) };
	struct mlc_param who[] = { MLC_PSTR(owner) };
	struct counts k = { 0, 0 };

	if (total_max <= 0 && owner_max <= 0)
		return 0;
	/* The lock row is made when missing (a database older than the
	 * migration); the statement locks it either way. */
	if (lock && mlc_db_exec(db, "INSERT INTO limit_locks (name) VALUES (?) "
				"ON DUPLICATE KEY UPDATE name = name", key, 1, NULL, NULL, err) < 0)
		return -1;
	if (mlc_db_exec(db, s->count_sql, who, 1, count_row, &k, err) < 0)
		return -1;
	if (owner_max > 0 && k.owner >= owner_max) {
		mlc_error(err, 409, "limit reached: owner '%s' has %lld %s, and %s=%ld; %s",
			    owner, k.owner, s->what, s->owner_key, owner_max, s->fix);
		return -1;
	}
	if (total_max > 0 && k.total >= total_max) {
		mlc_error(err, 409, "limit reached: this installation has %lld %s, and %s=%ld; %s",
			    k.total, s->what, s->total_key, total_max, s->fix);
		return -1;
	}
	return 0;
}
