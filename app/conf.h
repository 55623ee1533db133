/*
 * conf.h - the KEY=value configuration shared with scripts/mlc and the
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

#endif
