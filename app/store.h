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
 * Make the blob durable at relpath inside the store: fsync the file,
 * create parent directories, rename, fsync the directory.  Writes the
 * hex SHA-256 into sha_hex.  Returns -1 with err (507 when the disk is
 * full, 500 otherwise); the temporary file is then gone too.
 */
int mlc_blob_commit(struct mlc_blob *b, const char *relpath, char sha_hex[65],
		    struct mlc_err *err);

/* Drop an uncommitted blob and its temporary file; safe to call twice. */
void mlc_blob_discard(struct mlc_blob *b);

/* Remove one stored file (relpath inside the store). */
int mlc_store_unlink(const char *relpath);

/* Remove a model's whole directory tree from the store. */
int mlc_store_remove_model(const char *modelid);

#endif
