/*
 * pool.c - pool sizes and slots (see pool.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "pool.h"

int mlc_pool_size(int slow)
{
	/* Counted once: sysconf reads /sys, and predict asks for every call
	 * (its per-deployment limit is half the slow pool). */
	static long cores;
	long n = mlc_config_long(slow ? "MLC_SLOW_WORKERS" : "MLC_WORKERS", 0);

	if (!cores && (cores = sysconf(_SC_NPROCESSORS_ONLN)) <= 0)
		cores = 1;
	/* Four per core in both pools: a fast worker spends most of a request
	 * waiting for MariaDB, and a write waits for its commit to reach the
	 * disk; with several in flight per core the database groups their log
	 * flushes (group commit) and the cores stay busy. */
	if (n <= 0)
		n = 4 * cores;
	return n > MLC_MAX_WORKERS ? MLC_MAX_WORKERS : (int)n;
}

static int valid_name(const char *s)
{
	size_t n = 0;

	if (*s == '.')
		return 0;
	for (; s[n]; n++)
		if (!((s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= 'a' && s[n] <= 'z') ||
		      (s[n] >= '0' && s[n] <= '9') || s[n] == '.' || s[n] == '_' || s[n] == '-'))
			return 0;
	return n >= 1 && n <= 200;
}

/* The slot file dir/name, opened (made when missing), or -1 with errno. */
static int slot_open(const char *dir, const char *name, int n)
{
	char path[4096];
	int f;

	if (!valid_name(name) || n < 1) {
		errno = EINVAL;
		return -1;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	f = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (f < 0 && errno == ENOENT) {
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return -1;
		f = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	}
	return f;
}

/* Lock byte i of f (cmd F_OFD_SETLK or F_OFD_SETLKW). */
static int slot_lock(int f, int i, int cmd)
{
	struct flock lk = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = i, .l_len = 1 };

	return fcntl(f, cmd, &lk);
}

/* The first free slot of f's n, locked; MLC_SLOTS_FULL; or -1 with errno. */
static int slot_scan(int f, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		if (slot_lock(f, i, F_OFD_SETLK) == 0)
			return i;
		if (errno != EAGAIN && errno != EACCES)
			return -1;
	}
	return MLC_SLOTS_FULL;
}

static int slot_result(int f, int rc, int *fd)
{
	if (rc >= 0) {
		*fd = f;
		return rc;
	}
	{
		int e = errno;

		close(f);
		errno = e;
	}
	return rc;
}

int mlc_slot_take(const char *dir, const char *name, int n, int *fd)
{
	int f;

	*fd = -1;
	if ((f = slot_open(dir, name, n)) < 0)
		return -1;
	return slot_result(f, slot_scan(f, n), fd);
}

static void on_alarm(int sig)
{
	(void)sig;	/* only to interrupt a waiting lock */
}

static double mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/*
 * Waiting sleeps in the kernel on one held slot (F_OFD_SETLKW, woken the
 * moment its holder lets go), for at most SLICE_MS at a time (an interval
 * timer's SIGALRM ends the wait with EINTR), then looks at every slot
 * again: another slot than the one waited on may have come free.
 */
#define SLICE_MS 2

int mlc_slot_take_wait(const char *dir, const char *name, int n, int wait_ms, int *fd)
{
	static int handler_set;
	double end = mono_ms() + wait_ms;
	int f, rc, round = 0;

	*fd = -1;
	if ((f = slot_open(dir, name, n)) < 0)
		return -1;
	if (!handler_set) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_alarm;	/* no SA_RESTART: the wait ends */
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGALRM, &sa, NULL) == 0)
			handler_set = 1;
	}
	while ((rc = slot_scan(f, n)) == MLC_SLOTS_FULL && handler_set) {
		double left = end - mono_ms();
		struct itimerval it = { { 0, 0 }, { 0, 0 } }, off = { { 0, 0 }, { 0, 0 } };
		int i = (int)((getpid() + round++) % n);

		if (left <= 0)
			break;
		it.it_value.tv_usec = (long)((left < SLICE_MS ? left : SLICE_MS) * 1000) + 1;
		setitimer(ITIMER_REAL, &it, NULL);
		rc = slot_lock(f, i, F_OFD_SETLKW);
		setitimer(ITIMER_REAL, &off, NULL);
		if (rc == 0) {
			rc = i;
			break;
		}
		if (errno != EINTR && errno != EAGAIN && errno != EACCES && errno != EDEADLK) {
			rc = -1;
			break;
		}
	}
	return slot_result(f, rc, fd);
}

void mlc_slot_release(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}
