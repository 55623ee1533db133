/*
 * config.c - loading conf/mlconnector.conf.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef MLC_TEST_HOOKS
#include <limits.h>
#include <unistd.h>
#endif

#include "config.h"

struct conf_entry {
	char *key;
	char *value;
};

static struct conf_entry *entries;
static size_t nentries;

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

/* Strip one pair of matching quotes, as the shell would for a simple value. */
static char *unquote(char *v)
{
	size_t n = strlen(v);

	if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
		v[n - 1] = '\0';
		return v + 1;
	}
	return v;
}

static int valid_key(const char *k)
{
	if (!*k || isdigit((unsigned char)*k))
		return 0;
	for (; *k; k++)
		if (!isalnum((unsigned char)*k) && *k != '_')
			return 0;
	return 1;
}

static void set_entry(const char *key, const char *value)
{
	size_t i;

	for (i = 0; i < nentries; i++) {
		if (!strcmp(entries[i].key, key)) {
			free(entries[i].value);
			entries[i].value = mlc_xstrdup(value);
			return;
		}
	}
	entries = mlc_xrealloc(entries, (nentries + 1) * sizeof(*entries));
	entries[nentries].key = mlc_xstrdup(key);
	entries[nentries].value = mlc_xstrdup(value);
	nentries++;
}

int mlc_config_load(const char *path, struct mlc_err *err)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	int lineno = 0, rc = 0;

	if (!f) {
		mlc_err_set(err, 0, "cannot read config '%s': %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char *s = trim(line), *eq;

		lineno++;
		if (!*s || *s == '#')
			continue;
		if (!strncmp(s, "export ", 7))
			s = trim(s + 7);
		eq = strchr(s, '=');
		if (!eq) {
			mlc_err_set(err, 0, "%s:%d: expected KEY=value", path, lineno);
			rc = -1;
			break;
		}
		*eq = '\0';
		if (!valid_key(s)) {
			mlc_err_set(err, 0, "%s:%d: invalid key '%s'", path, lineno, s);
			rc = -1;
			break;
		}
		set_entry(s, unquote(eq + 1));
	}
	fclose(f);
	return rc;
}

const char *mlc_config_get(const char *key, const char *def)
{
	const char *env = getenv(key);
	size_t i;

	if (env && *env)
		return env;
	for (i = 0; i < nentries; i++)
		if (!strcmp(entries[i].key, key) && *entries[i].value)
			return entries[i].value;
	return def;
}

long mlc_config_long(const char *key, long def)
{
	const char *v = mlc_config_get(key, NULL);
	char *end;
	long n;

	if (!v)
		return def;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end)
		return def;
	return n;
}

void mlc_config_release(void)
{
	size_t i;

	for (i = 0; i < nentries; i++) {
		free(entries[i].key);
		free(entries[i].value);
	}
	free(entries);
	entries = NULL;
	nentries = 0;
}

#ifdef MLC_TEST_HOOKS
int mlc_test_hook(const char *name, const char *match, char *first)
{
	const char *on = getenv("MLC_TEST_HOOKS");
	char path[PATH_MAX], buf[256];
	size_t n;
	FILE *f;

	if (!on || strcmp(on, "1"))
		return 0;
	snprintf(path, sizeof(path), "%s/test-%s", mlc_config_get("MLC_VAR", "var"), name);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if (match && strncmp(match, buf, strlen(buf)))
		return 0;
	if (unlink(path) < 0)
		return 0;
	if (first)
		*first = buf[0];
	return 1;
}
#endif
