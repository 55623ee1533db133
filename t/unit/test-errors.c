/*
 * test-errors.c - the one rule for failures of lower layers (app/util.c):
 * mlc_error fills a struct mlc_err and returns -1; mlc_error_errno appends
 * strerror(errno) and maps a full disk or quota (ENOSPC, EDQUOT) to 507,
 * anything else to 500 (docs/API.md "Errors").
 */
#include <errno.h>
#include <string.h>

#include "mlc.h"
#include "tap.h"

static int fails_with(struct mlc_err *err, int e)
{
	errno = e;
	return mlc_error_errno(err, "cannot write the %s", "upload");
}

int main(void)
{
	struct mlc_err err = { 0, "" };
	char big[2 * MLC_ERR_MAX];

	is_int(mlc_error(&err, 404, "model '%s' not found", "m1"), -1, "mlc_error returns -1");
	is_int(err.code, 404, "with the status as the code");
	is_str(err.msg, "model 'm1' not found", "and the sentence");
	is_int(mlc_error((struct mlc_err *)NULL, 500, "nobody wants %s", "this"), -1,
	       "a NULL err is allowed");

	is_int(mlc_errno_status(ENOSPC), 507, "ENOSPC is 507 Insufficient Storage");
	is_int(mlc_errno_status(EDQUOT), 507, "EDQUOT is 507 as well");
	is_int(mlc_errno_status(EACCES), 500, "EACCES is 500");
	is_int(mlc_errno_status(EIO), 500, "EIO is 500");
	is_int(mlc_errno_status(0), 500, "no errno is 500");

	is_int(fails_with(&err, ENOSPC), -1, "mlc_error_errno returns -1");
	is_int(err.code, 507, "ENOSPC: 507");
	is_str(err.msg, "cannot write the upload: No space left on device",
	       "the sentence gets strerror appended");
	is_int(errno, ENOSPC, "errno is kept");
	fails_with(&err, EDQUOT);
	is_int(err.code, 507, "EDQUOT: 507");
	ok(!strncmp(err.msg, "cannot write the upload: ", 25) && strlen(err.msg) > 25,
	   "with its strerror (%s)", err.msg);
	fails_with(&err, EROFS);
	is_int(err.code, 500, "EROFS: 500");
	is_str(err.msg, "cannot write the upload: Read-only file system", "its sentence");
	fails_with(&err, 0);
	is_int(err.code, 500, "no errno (a short write): 500");
	is_str(err.msg, "cannot write the upload: Input/output error", "read as EIO");

	/* A sentence that fills the buffer: cut, strerror dropped, no overflow. */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	errno = ENOSPC;
	mlc_error_errno(&err, "%s", big);
	is_int(err.code, 507, "a long sentence keeps the status");
	is_int(strlen(err.msg), MLC_ERR_MAX - 1, "and is cut to the buffer");
	/* ... never inside a character */
	memset(big, 0, sizeof(big));
	memset(big, 'a', MLC_ERR_MAX - 2);
	strcat(big, "\xc3\xa9");	/* 'é' across the end of the buffer */
	mlc_error(&err, 422, "%s", big);
	is_int(strlen(err.msg), MLC_ERR_MAX - 2, "a cut character is dropped whole");
	return done_testing();
}
