/*
 * conf.h - the KEY=value configuration shared with scripts/mlc and the
 * Python parts.  An environment variable of the same name overrides the
 * file; the file overrides the built-in default.
 */
#ifndef MLC_CONFIG_H
#define MLC_CONFIG_H

#include "mlc.h"

/* Read path: KEY=value lines as docs/CONFIG.md ("File format") defines
 * them; a later line for the same key wins.  Returns -1 with err filled
 * ("path:line: why") when the file cannot be read or a line is not in the
 * grammar; the keys read before that line stay loaded. */
int mlc_config_load(const char *path, struct mlc_err *err);

/*
 * One line of the file, without its '\n': len bytes at line, which may
 * hold NUL bytes, and one more byte that may be written.  The line is
 * changed in place.  Returns 1 with *key and *value pointing into it, 0
 * for a blank or comment line, or -1 with *why (a static string such as
 * "expected KEY=value"), and *key set when the key itself is invalid.
 */
int mlc_config_parse_line(char *line, size_t len, char **key, char **value, const char **why);

/* A non-empty environment variable, else a non-empty value of the file,
 * else def. */
const char *mlc_config_get(const char *key, const char *def);

/* The value the file gives key ("" for KEY=), or NULL: no environment. */
const char *mlc_config_file_value(const char *key);

/* Number of distinct keys read from the file. */
size_t mlc_config_count(void);

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
