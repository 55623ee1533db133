/*
 * spool.h - job bundles for mlc-spooler: a gzip tar of job.json and the
 * job's files, written with libarchive under spool/tmp/ and renamed into
 * spool/new/ (maildir style), so the spooler never sees half a bundle.
 */
#ifndef MLC_SPOOL_H
#define MLC_SPOOL_H

#include <json-c/json.h>
#include "mlc.h"

struct mlc_bundle_file {
	const char *name;	/* member name inside the bundle, e.g. "model.pkl" */
	const char *path;	/* file to copy in */
};

/*
 * Write <spool>/tmp/<name> holding job.json (the manifest, serialised)
 * and the files, fsync it, and leave it there; mlc_spool_publish then
 * moves it into new/.  Returns -1 with err (507 when the disk is full).
 */
int mlc_spool_write(const char *name, json_object *manifest,
		    const struct mlc_bundle_file *files, unsigned nfiles,
		    struct mlc_err *err);

/* Create tmp/<name> (truncated, 0640) for the caller to write and fsync;
 * returns its descriptor, or -1 with err. */
int mlc_spool_create(const char *name, struct mlc_err *err);

/* Rename tmp/<name> into new/<name> and fsync new/. */
int mlc_spool_publish(const char *name, struct mlc_err *err);

/* Remove tmp/<name> (after a failure). */
void mlc_spool_discard(const char *name);

#endif
