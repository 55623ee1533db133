/*
 * caps.h - caps on what one installation and one owner may hold at once:
 * deployments that are not stopped (MLC_MAX_DEPLOYMENTS,
 * MLC_MAX_DEPLOYMENTS_PER_OWNER) and trainings that are waiting or running
 * (MLC_MAX_TRAININGS, MLC_MAX_TRAININGS_PER_OWNER).  0 means no cap.
 */
#ifndef MLC_CAPS_H
#define MLC_CAPS_H

#include "db.h"

enum mlc_cap_kind { MLC_CAP_DEPLOYMENTS, MLC_CAP_TRAININGS };

/*
 * Refuse a new job of this kind for owner when a cap is reached: -1 with
 * err set to 409 and a detail naming the limit, its value and how many
 * are in use (or to the database's error), 0 when there is room.
 *
 * With lock nonzero, call it inside the transaction that inserts the new
 * row, before any other plain (non-locking) read of that transaction: it
 * first locks the kind's row of limit_locks, so that adds of that kind
 * take turns from the count to the commit, and the count then sees every
 * add committed before.  Without lock it is a quick check that spares a
 * request the work of a job that would be refused anyway.
 */
int mlc_cap_check(struct mlc_db *db, enum mlc_cap_kind kind, const char *owner, int lock,
		    struct mlc_err *err);

#endif
