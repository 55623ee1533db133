/*
 * test-pool.c - slots (app/pool.c): n holders at most, freed on release
 * and when the holder dies, and names that cannot leave the directory.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pool.h"
#include "tap.h"

int main(void)
{
	char dir[] = "/tmp/test-pool-XXXXXX", sub[64];
	int fd[4], extra, i, rc, pipefd[2];
	char c;
	pid_t pid;

	if (!mkdtemp(dir))
		return 1;
	snprintf(sub, sizeof(sub), "%s/slots", dir);

	for (i = 0; i < 3; i++) {
		rc = mlc_slot_take(sub, "predict-dep-1", 3, &fd[i]);
		is_int(rc, i, "slot %d of 3 is taken (the directory is made on first use)", i);
	}
	is_int(mlc_slot_take(sub, "predict-dep-1", 3, &extra), MLC_SLOTS_FULL,
	       "a fourth holder finds all 3 slots taken");
	is_int(extra, -1, "and holds nothing");
	is_int(mlc_slot_take(sub, "predict-dep-2", 3, &fd[3]), 0, "another name has slots of its own");
	mlc_slot_release(&fd[3]);
	mlc_slot_release(&fd[1]);
	is_int(fd[1], -1, "a released slot's descriptor is cleared");
	is_int(mlc_slot_take(sub, "predict-dep-1", 3, &fd[1]), 1, "a released slot is free again");
	mlc_slot_release(&fd[1]);
	mlc_slot_release(&fd[1]);
	ok(1, "releasing twice is harmless");
	is_int(mlc_slot_take(sub, "predict-dep-1", 4, &fd[1]), 1,
	       "a larger n offers the slots above the old ones too");
	is_int(mlc_slot_take(sub, "predict-dep-1", 4, &extra), 3, "slot 3 of 4");
	mlc_slot_release(&extra);
	mlc_slot_release(&fd[1]);

	/* A holder that dies frees its slot. */
	mlc_slot_release(&fd[2]);
	is_int(mlc_slot_take(sub, "predict-dep-1", 3, &fd[1]), 1, "slots 0 and 1 held here");
	if (pipe(pipefd) < 0)
		return 1;
	pid = fork();
	if (pid == 0) {
		int mine;

		close(pipefd[0]);
		c = (char)('0' + mlc_slot_take(sub, "predict-dep-1", 3, &mine));
		if (write(pipefd[1], &c, 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(pipefd[1]);
	if (read(pipefd[0], &c, 1) != 1)
		c = '?';
	is_int(c, '2', "another process takes the free slot 2");
	is_int(mlc_slot_take(sub, "predict-dep-1", 3, &extra), MLC_SLOTS_FULL,
	       "while it holds it, all 3 are taken");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	is_int(mlc_slot_take(sub, "predict-dep-1", 3, &extra), 2,
	       "once it was killed its slot is free");
	mlc_slot_release(&extra);
	mlc_slot_release(&fd[1]);
	mlc_slot_release(&fd[0]);

	/* Waiting: a slot freed while a caller waits is taken at once; none
	 * freed within the wait is MLC_SLOTS_FULL after it. */
	{
		struct timespec t0, t1;
		double ms;

		is_int(mlc_slot_take(sub, "predict-dep-3", 1, &fd[0]), 0, "the one slot of dep-3 is held");
		clock_gettime(CLOCK_MONOTONIC, &t0);
		is_int(mlc_slot_take_wait(sub, "predict-dep-3", 1, 60, &extra), MLC_SLOTS_FULL,
		       "waiting 60 ms for a slot nobody frees: all taken");
		clock_gettime(CLOCK_MONOTONIC, &t1);
		ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
		ok(ms >= 55 && ms < 2000, "... after the wait (%.1f ms)", ms);
		is_int(extra, -1, "... holding nothing");
		pid = fork();
		if (pid == 0) {
			int mine;
			struct timespec d = { 0, 200 * 1000000L };

			mlc_slot_release(&fd[0]);	/* the parent's copy stays */
			nanosleep(&d, NULL);
			_exit(mlc_slot_take(sub, "predict-dep-3", 1, &mine) == MLC_SLOTS_FULL ? 0 : 1);
		}
		{
			struct timespec d = { 0, 10 * 1000000L };
			int st = 0;

			nanosleep(&d, NULL);
			clock_gettime(CLOCK_MONOTONIC, &t0);
			/* Released by the parent below, from a child: a second
			 * process holds the lock's file description meanwhile. */
			if (fork() == 0) {
				struct timespec d2 = { 0, 20 * 1000000L };

				nanosleep(&d2, NULL);
				_exit(0);
			}
			mlc_slot_release(&fd[0]);
			is_int(mlc_slot_take_wait(sub, "predict-dep-3", 1, 1000, &extra), 0,
			       "a waiting caller takes the slot once free");
			clock_gettime(CLOCK_MONOTONIC, &t1);
			ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
			ok(ms < 500, "... without waiting out the limit (%.1f ms)", ms);
			waitpid(pid, &st, 0);
			is_int(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0, "which another process then finds taken");
			while (wait(NULL) > 0)
				;
			mlc_slot_release(&extra);
		}
	}

	/* Names. */
	errno = 0;
	is_int(mlc_slot_take(sub, "../escape", 3, &extra), -1, "a name with '/' is refused");
	is_int(errno, EINVAL, "with EINVAL");
	is_int(mlc_slot_take(sub, "..", 3, &extra), -1, "'..' is refused");
	is_int(mlc_slot_take(sub, ".hidden", 3, &extra), -1, "a name starting with '.' is refused");
	is_int(mlc_slot_take(sub, "", 3, &extra), -1, "an empty name is refused");
	is_int(mlc_slot_take(sub, "x", 0, &extra), -1, "n = 0 is refused");
	is_int(mlc_slot_take("/nonexistent-dir/deeper", "x", 1, &extra), -1,
	       "a directory that cannot be made is an error, not a slot");

	unlink(sub);
	{
		char f[128];

		snprintf(f, sizeof(f), "%s/predict-dep-1", sub);
		unlink(f);
		snprintf(f, sizeof(f), "%s/predict-dep-2", sub);
		unlink(f);
		snprintf(f, sizeof(f), "%s/predict-dep-3", sub);
		unlink(f);
	}
	rmdir(sub);
	rmdir(dir);
	return done_testing();
}
