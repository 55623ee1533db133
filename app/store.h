/*
 * store.h - the artifact store: files under MLC_ARTIFACTS (default
 * $MLC_VAR/artifacts), written to a temporary file, hashed while written,
 * fsynced and renamed into place.
 */
#ifndef MLC_STORE_H
#define MLC_STORE_H

#include <limits.h>
#include <stddef.h>
#include <openssl/evp.h>

#include "mlc.h"

struct mlc_blob {
	int fd;
	char tmp_path[PATH_MAX];
	EVP_MD_CTX *sha;
	unsigned long long size;
	int write_errno;		/* first write error, 0 if none */
	char *buf;			/* bytes not yet written: writes go out in */
	size_t buf_len;			/* MLC_BLOB_BUFFER pieces, not per request read */
	int synced;			/* mlc_blob_sync succeeded */
};

#define MLC_BLOB_BUFFER (1 << 20)

/* The store's root directory (absolute or relative to the working dir). */
const char *mlc_store_root(void);

/* Start a new blob: a temporary file inside the store (so that the final
 * rename stays on one filesystem).  Returns -1 with err on failure. */
int mlc_blob_open(struct mlc_blob *b, struct mlc_err *err);

/* Append data; on an I/O error remembers errno in b->write_errno and
 * returns -1 (later writes are ignored). */
int mlc_blob_write(struct mlc_blob *b, const char *data, size_t len);

/*
 * Make the blob's bytes durable under its temporary name (write what is
 * buffered, fsync) and write the hex SHA-256 into sha_hex.  Done before
 * any database row lock is taken.  Returns -1 with err (507 when the disk
 * is full, 500 otherwise).
 */
int mlc_blob_sync(struct mlc_blob *b, char sha_hex[65], struct mlc_err *err);

/*
 * Give a synced blob its name relpath inside the store: create parent
 * directories (each fsynced in its parent), link it there, fsync the
 * directory.  The blob is released (as mlc_blob_discard) on success (0).
 * A file already at relpath is left alone: 1, nothing done, err untouched.
 * Returns -1 with err; the temporary file is left for mlc_blob_discard.
 */
int mlc_blob_place(struct mlc_blob *b, const char *relpath, struct mlc_err *err);

/*
 * Undo mlc_blob_place for a row that was not committed: the file at
 * relpath (this blob's, no row names it) becomes the blob's temporary
 * file again, so that it can be placed under another name.  0, or -1
 * with errno (the file is then still at relpath).
 */
int mlc_blob_unplace(struct mlc_blob *b, const char *relpath);

/* Drop an uncommitted blob and its temporary file; safe to call twice. */
void mlc_blob_discard(struct mlc_blob *b);

/* fsync the directory that holds path, so that an entry created or
 * renamed there survives a crash.  Returns -1 with errno. */
int mlc_fsync_parent(const char *path);

/* Remove one stored file (relpath inside the store). */
int mlc_store_unlink(const char *relpath);

/* Remove a model's whole directory tree from the store. */
int mlc_store_remove_model(const char *modelid);

#endif
