/*
 * store.c - durable files in the artifact store.
 *
 * Order of operations matters for crash safety: the bytes are fsynced
 * under a temporary name (mlc_blob_sync, before the caller takes any row
 * lock: fsyncing 512 MiB can take seconds), renamed to their final name
 * and the directory fsynced (mlc_blob_place), all before the caller
 * commits the database row that points at the file.  A directory created
 * on the way is fsynced in its parent, so that the path survives a crash
 * too.  A crash in between leaves at most an unreferenced temporary file
 * (removed by mlc-spooler once old, see scripts/mlcpy/tmpclean.py) or an
 * unreferenced final file, never a row pointing at nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "store.h"

const char *mlc_store_root(void)
{
	static char root[PATH_MAX];

	if (!root[0]) {
		const char *a = mlc_config_get("MLC_ARTIFACTS", NULL);

		if (a)
			snprintf(root, sizeof(root), "%s", a);
		else
			snprintf(root, sizeof(root), "%s/artifacts",
				 mlc_config_get("MLC_VAR", "var"));
	}
	return root;
}

/* fsync the directory holding path (its parent). */
int mlc_fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	char *slash;
	int fd, rc;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* mkdir -p for the directories of path (not its last component).  0750:
 * the store's group (setgid, MLC_WEB_GROUP: nginx's) may enter, no one
 * else (docs/OPERATIONS.md, State directory and permissions).  Each
 * directory made here is fsynced in its parent. */
static int make_parents(char *path)
{
	char *p;
	int rc;

	for (p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		rc = mkdir(path, 0750);
		if ((rc < 0 && errno != EEXIST) || (rc == 0 && mlc_fsync_parent(path) < 0)) {
			*p = '/';
			return -1;
		}
		*p = '/';
	}
	return 0;
}

int mlc_blob_open(struct mlc_blob *b, struct mlc_err *err)
{
	memset(b, 0, sizeof(*b));
	b->fd = -1;
	snprintf(b->tmp_path, sizeof(b->tmp_path), "%s/.tmp/upload-XXXXXX", mlc_store_root());
	if (make_parents(b->tmp_path) < 0 || (b->fd = mkstemp(b->tmp_path)) < 0) {
		mlc_error_errno(err, "cannot create a file in the artifact store");
		b->tmp_path[0] = '\0';
		return -1;
	}
	/* nginx serves downloads from the store as another user, in the store's
	 * group; nobody else may read training data and models. */
	fchmod(b->fd, 0640);
	b->buf = mlc_xmalloc(MLC_BLOB_BUFFER);
	b->sha = EVP_MD_CTX_new();
	if (!b->sha || !EVP_DigestInit_ex(b->sha, EVP_sha256(), NULL))
		mlc_die("cannot initialise SHA-256");
	return 0;
}

/* Write all of data to the file; remembers the first error. */
static int write_all(struct mlc_blob *b, const char *data, size_t len)
{
	size_t off = 0;
	ssize_t n;

	while (off < len) {
		n = write(b->fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			b->write_errno = n < 0 ? errno : EIO;
			return -1;
		}
		off += (size_t)n;
	}
	return 0;
}

static int flush_buffer(struct mlc_blob *b)
{
	int rc = b->buf_len ? write_all(b, b->buf, b->buf_len) : 0;

	b->buf_len = 0;
	return rc;
}

int mlc_blob_write(struct mlc_blob *b, const char *data, size_t len)
{
	if (b->write_errno)
		return -1;
	EVP_DigestUpdate(b->sha, data, len);
	b->size += len;
	if (b->buf_len + len > MLC_BLOB_BUFFER && flush_buffer(b) < 0)
		return -1;
	if (len >= MLC_BLOB_BUFFER)
		return write_all(b, data, len);
	memcpy(b->buf + b->buf_len, data, len);
	b->buf_len += len;
	return 0;
}

static void hex(const unsigned char *in, unsigned n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	unsigned i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static void store_err(struct mlc_err *err, int e)
{
	errno = e;
	mlc_error_errno(err, "cannot store the file");
}

int mlc_blob_sync(struct mlc_blob *b, char sha_hex[65], struct mlc_err *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;

	if (flush_buffer(b) < 0 || b->write_errno) {
		store_err(err, b->write_errno ? b->write_errno : EIO);
		return -1;
	}
	if (fsync(b->fd) < 0) {
		store_err(err, errno);
		return -1;
	}
	EVP_DigestFinal_ex(b->sha, md, &mdlen);
	hex(md, mdlen, sha_hex);
	b->synced = 1;
	return 0;
}

int mlc_blob_place(struct mlc_blob *b, const char *relpath, struct mlc_err *err)
{
	char final[PATH_MAX];
	int e;

	if (!b->synced) {
		store_err(err, EINVAL);
		return -1;
	}
	snprintf(final, sizeof(final), "%s/%s", mlc_store_root(), relpath);
	/* link(), not rename(): a file already at relpath is never replaced.
	 * Two API hosts on one shared store (docs/SCALING.md) can pick the
	 * same version at once; the loser must not overwrite, and later
	 * unlink, the file the winner's committed row names. */
	if (make_parents(final) < 0) {
		store_err(err, errno);
		return -1;
	}
	if (link(b->tmp_path, final) < 0) {
		if (errno == EEXIST)
			return 1;
		store_err(err, errno);
		return -1;
	}
	unlink(b->tmp_path);
	b->tmp_path[0] = '\0';
	if (mlc_fsync_parent(final) < 0) {
		e = errno;
		unlink(final);
		store_err(err, e);
		return -1;
	}
	mlc_blob_discard(b);
	return 0;
}

int mlc_blob_unplace(struct mlc_blob *b, const char *relpath)
{
	char final[PATH_MAX], tmp[sizeof(b->tmp_path)];
	int fd;

	snprintf(final, sizeof(final), "%s/%s", mlc_store_root(), relpath);
	snprintf(tmp, sizeof(tmp), "%s/.tmp/upload-XXXXXX", mlc_store_root());
	fd = mkstemp(tmp);
	if (fd < 0)
		return -1;
	close(fd);
	if (rename(final, tmp) < 0) {
		int e = errno;

		unlink(tmp);
		errno = e;
		return -1;
	}
	snprintf(b->tmp_path, sizeof(b->tmp_path), "%s", tmp);
	b->synced = 1;
	return 0;
}

void mlc_blob_discard(struct mlc_blob *b)
{
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
	if (b->tmp_path[0])
		unlink(b->tmp_path);
	b->tmp_path[0] = '\0';
	if (b->sha)
		EVP_MD_CTX_free(b->sha);
	b->sha = NULL;
	free(b->buf);
	b->buf = NULL;
	b->buf_len = 0;
}

int mlc_store_unlink(const char *relpath)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", mlc_store_root(), relpath);
	return unlink(path);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

int mlc_store_remove_model(const char *modelid)
{
	char path[PATH_MAX];

	/* modelid comes from the database (a UUID), never a client path. */
	snprintf(path, sizeof(path), "%s/%s", mlc_store_root(), modelid);
	if (access(path, F_OK) < 0)
		return 0;
	return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}
