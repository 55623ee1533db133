/*
 * config.h - the KEY=value configuration shared with scripts/mlc and the
 * Python parts.  An environment variable of the same name overrides the
 * file; the file overrides the built-in default.
 */
#ifndef MLC_CONFIG_H
#define MLC_CONFIG_H

#include "mlc.h"

/* Read path (shell-compatible KEY=value lines, '#' comments, values
 * optionally in single or double quotes).  Returns -1 with err filled when
 * the file cannot be read or a line is malformed. */
int mlc_config_load(const char *path, struct mlc_err *err);

/* Environment, then file, then def. */
const char *mlc_config_get(const char *key, const char *def);

/* As mlc_config_get, parsed as an integer; def when absent or invalid. */
long mlc_config_long(const char *key, long def);

void mlc_config_release(void);

#ifdef MLC_TEST_HOOKS
/*
 * Fault injection, compiled only into the test build (app/mlc-api-asan)
 * and active only with MLC_TEST_HOOKS=1 in the environment: the hook
 * `name` is armed by a file $MLC_VAR/test-<name>.  When it exists and
 * `match` starts with its content (or match is NULL), this process removes
 * it - the first one to do so takes the hook - and 1 is returned with the
 * content's first byte in *first (when first is not NULL).  Otherwise 0.
 */
int mlc_test_hook(const char *name, const char *match, char *first);
#endif

#endif
