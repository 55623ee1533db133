/*
 * pool.c - pool sizes and slots (see pool.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "pool.h"

int mlc_pool_size(int slow)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	long n = mlc_config_long(slow ? "MLC_SLOW_WORKERS" : "MLC_WORKERS", 0);

	if (cores <= 0)
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

int mlc_slot_take(const char *dir, const char *name, int n, int *fd)
{
	char path[4096];
	int i, f;

	*fd = -1;
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
	if (f < 0)
		return -1;
	for (i = 0; i < n; i++) {
		struct flock lk = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = i, .l_len = 1 };

		if (fcntl(f, F_OFD_SETLK, &lk) == 0) {
			*fd = f;
			return i;
		}
		if (errno != EAGAIN && errno != EACCES) {
			int e = errno;

			close(f);
			errno = e;
			return -1;
		}
	}
	close(f);
	return MLC_SLOTS_FULL;
}

void mlc_slot_release(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}
