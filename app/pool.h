/*
 * pool.h - the sizes of mlc-api's two worker pools, and the slots that
 * share the slow pool among deployments.
 */
#ifndef MLC_POOL_H
#define MLC_POOL_H

#define MLC_MAX_WORKERS 256

/* Workers of the fast pool (MLC_WORKERS; 0: one per core) or of the slow
 * pool (MLC_SLOW_WORKERS; 0: four per core), within 1..MLC_MAX_WORKERS. */
int mlc_pool_size(int slow);

/*
 * Slots: at most n holders of one name at a time, across processes.  Each
 * slot is one byte of the file <dir>/<name>, locked with an open file
 * description lock (F_OFD_SETLK), so a slot is freed when its holder
 * releases it or dies, whatever the way.  name must be made of
 * [A-Za-z0-9._-] and not start with '.'; dir is created when missing.
 *
 * Returns the slot's number (0..n-1) with *fd holding it,
 * MLC_SLOTS_FULL when all n are held, or -1 with errno when the file
 * cannot be used.
 */
#define MLC_SLOTS_FULL (-2)
int mlc_slot_take(const char *dir, const char *name, int n, int *fd);

/*
 * The same, waiting up to wait_ms for a slot to come free: the waiter
 * sleeps until a holder lets go (not polling), so it takes the slot
 * within microseconds of its release.  Uses SIGALRM (an interval timer)
 * to bound each wait: not for processes that use either otherwise.
 */
int mlc_slot_take_wait(const char *dir, const char *name, int n, int wait_ms, int *fd);

/* Give the slot back (*fd becomes -1; nothing happens when it is -1). */
void mlc_slot_release(int *fd);

#endif
