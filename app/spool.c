/*
 * spool.c - writing job bundles with libarchive.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <archive.h>
#include <archive_entry.h>

#include "conf.h"
#include "log.h"
#include "spool.h"
#include "store.h"

#define COPY_CHUNK 65536

static void spool_path(char *out, size_t cap, const char *sub, const char *name)
{
	snprintf(out, cap, "%s/spool/%s%s%s", mlc_config_get("MLC_VAR", "var"), sub,
		 name ? "/" : "", name ? name : "");
}

/* The spooler (root) creates the spool with its owners at start; these
 * are for an instance whose spooler has not run yet.  cur/ is the
 * spooler's alone and never made here.  One made here is fsynced in its
 * parent, so that a bundle renamed into it is not lost with the directory
 * entry. */
static int ensure_dirs(void)
{
	static const char *const subs[] = { "", "tmp", "new" };
	char path[PATH_MAX];
	size_t i;
	int rc;

	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		spool_path(path, sizeof(path), subs[i], NULL);
		rc = mkdir(path, 0750);
		if ((rc < 0 && errno != EEXIST) || (rc == 0 && mlc_fsync_parent(path) < 0))
			return -1;
	}
	return 0;
}

static int add_member(struct archive *a, const char *name, const char *data,
		      size_t len, int fd)
{
	struct archive_entry *e = archive_entry_new();
	char buf[COPY_CHUNK];
	struct stat st;
	ssize_t n;
	int rc = -1;

	if (fd >= 0 && fstat(fd, &st) < 0)
		goto out;
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, fd >= 0 ? st.st_size : (la_int64_t)len);
	archive_entry_set_mtime(e, time(NULL), 0);
	if (archive_write_header(a, e) != ARCHIVE_OK)
		goto out;
	if (fd < 0) {
		if (archive_write_data(a, data, len) != (la_ssize_t)len)
			goto out;
	} else {
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			if (archive_write_data(a, buf, (size_t)n) != n)
				goto out;
		if (n < 0)
			goto out;
	}
	rc = 0;
out:
	archive_entry_free(e);
	return rc;
}

/* tmp/<name>.<pid>: a worker serves one request at a time, so two
 * requests for the same job name never share a temporary file. */
static void tmp_path(char *path, size_t cap, const char *name)
{
	char own[160];

	snprintf(own, sizeof(own), "%s.%ld", name, (long)getpid());
	spool_path(path, cap, "tmp", own);
}

/* Open a temporary bundle file; the fd stays ours so that it can be
 * fsynced after libarchive has flushed everything into it. */
static int open_tmp(const char *name, char *path, size_t cap)
{
	tmp_path(path, cap, name);
	return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
}

int mlc_spool_write(const char *name, json_object *manifest,
		    const struct mlc_bundle_file *files, unsigned nfiles,
		    struct mlc_err *err)
{
	char path[PATH_MAX];
	const char *json;
	struct archive *a = NULL;
	unsigned i;
	int fd = -1, ffd, e;

	if (ensure_dirs() < 0 || (fd = open_tmp(name, path, sizeof(path))) < 0)
		goto sys_fail;
	a = archive_write_new();
	archive_write_add_filter_gzip(a);
	/* Speed over size: bundles are short-lived and pickles compress poorly. */
	archive_write_set_filter_option(a, "gzip", "compression-level", "1");
	archive_write_set_format_pax_restricted(a);
	if (archive_write_open_fd(a, fd) != ARCHIVE_OK)
		goto arc_fail;
	json = json_object_to_json_string_ext(manifest, JSON_C_TO_STRING_PRETTY);
	if (add_member(a, "job.json", json, strlen(json), -1) < 0)
		goto arc_fail;
	for (i = 0; i < nfiles; i++) {
		ffd = open(files[i].path, O_RDONLY | O_CLOEXEC);
		if (ffd < 0)
			goto sys_fail;
		e = add_member(a, files[i].name, NULL, 0, ffd);
		close(ffd);
		if (e < 0)
			goto arc_fail;
	}
	if (archive_write_close(a) != ARCHIVE_OK)
		goto arc_fail;
	archive_write_free(a);
	a = NULL;
	if (fsync(fd) < 0)
		goto sys_fail;
	close(fd);
	return 0;
arc_fail:
	/* libarchive's own text ("Write error") does not say why. */
	e = archive_errno(a);
	if (e > 0) {
		errno = e;
		mlc_error_errno(err, "cannot write the job bundle: %s",
				archive_error_string(a) ? archive_error_string(a) : "write error");
	} else {
		mlc_error(err, 500, "cannot write the job bundle: %s",
			  archive_error_string(a) ? archive_error_string(a) : "unknown error");
	}
	goto cleanup;
sys_fail:
	mlc_error_errno(err, "cannot write the job bundle");
cleanup:
	if (a)
		archive_write_free(a);
	if (fd >= 0)
		close(fd);
	mlc_spool_discard(name);
	return -1;
}

int mlc_spool_create(const char *name, struct mlc_err *err)
{
	char path[PATH_MAX];
	int fd;

	if (ensure_dirs() < 0 || (fd = open_tmp(name, path, sizeof(path))) < 0) {
		mlc_error_errno(err, "cannot create %s in the spool", name);
		return -1;
	}
	return fd;
}

int mlc_spool_publish(const char *name, struct mlc_err *err)
{
	char from[PATH_MAX], to[PATH_MAX];

#ifdef MLC_TEST_HOOKS
	/* The worker dies between the row's COMMIT and publishing its
	 * bundle, as by kill -9 (test builds, see mlc_test_hook):
	 * $MLC_VAR/test-kill-before-publish holds the start of the bundle's
	 * name, e.g. "deploy-<id>". */
	if (mlc_test_hook("kill-before-publish", name, NULL)) {
		mlc_log("warn", NULL, "test hook: killed before publishing %s", name);
		raise(SIGKILL);
	}
#endif

	tmp_path(from, sizeof(from), name);
	spool_path(to, sizeof(to), "new", name);
	if (rename(from, to) < 0) {
		mlc_error_errno(err, "cannot publish the job bundle");
		return -1;
	}
	/* The bundle is in new/ now whatever happens: the caller's row says
	 * it is waiting, so a failed fsync is logged, not undone. */
	if (mlc_fsync_parent(to) < 0)
		mlc_log("warn", NULL, "spool: cannot fsync the directory of %s: %s", to,
			strerror(errno));
	return 0;
}

void mlc_spool_discard(const char *name)
{
	char path[PATH_MAX];

	tmp_path(path, sizeof(path), name);
	unlink(path);
}
