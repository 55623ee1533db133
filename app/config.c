/*
 * config.c - loading conf/mlconnector.conf.
 *
 * The grammar (docs/CONFIG.md, "File format") is shared with
 * scripts/mlcpy/config.py and scripts/mlc's load_config; all three are
 * tested against t/fixtures/config-grammar.json.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef MLC_TEST_HOOKS
#include <limits.h>
#include <unistd.h>
#endif

#include "conf.h"

struct conf_entry {
	char *key;
	char *value;
};

static struct conf_entry *entries;
static size_t nentries;

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int is_key_start(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int is_key_char(char c)
{
	return is_key_start(c) || (c >= '0' && c <= '9');
}

static char *skip_blanks(char *s)
{
	while (is_blank(*s))
		s++;
	return s;
}

/* Cut the blanks at the end of s. */
static void rtrim(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && is_blank(s[n - 1]))
		s[--n] = '\0';
}

static int valid_key(const char *k)
{
	if (!is_key_start(*k))
		return 0;
	while (is_key_char(*k))
		k++;
	return *k == '\0';
}

int mlc_config_parse_line(char *line, size_t len, char **key, char **value, const char **why)
{
	char *s, *eq, *v;

	*key = *value = NULL;
	*why = NULL;
	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	if (memchr(line, '\0', len)) {
		*why = "NUL byte";
		return -1;
	}
	line[len] = '\0';
	s = skip_blanks(line);
	if (!*s || *s == '#')
		return 0;
	if (!strncmp(s, "export", 6) && is_blank(s[6]) && is_key_start(*skip_blanks(s + 6)))
		s = skip_blanks(s + 6);
	eq = strchr(s, '=');
	if (!eq) {
		*why = "expected KEY=value";
		return -1;
	}
	*eq = '\0';
	rtrim(s);
	if (!valid_key(s)) {
		*key = s;	/* named in the message */
		*why = "invalid key";
		return -1;
	}
	v = skip_blanks(eq + 1);
	if (*v == '"' || *v == '\'') {
		char *close = strchr(v + 1, *v), *rest;

		if (!close) {
			*why = *v == '"' ? "no closing \" quote" : "no closing ' quote";
			return -1;
		}
		*close = '\0';
		rest = skip_blanks(close + 1);
		if (*rest && !(*rest == '#' && rest > close + 1)) {
			*why = "text after the closing quote";
			return -1;
		}
		*key = s;
		*value = v + 1;
		return 1;
	}
	/* Unquoted: up to a '#' that follows a blank, blanks around cut. */
	for (char *p = v; *p; p++) {
		if (*p == '#' && is_blank(p[-1])) {
			*p = '\0';
			break;
		}
	}
	rtrim(v);
	*key = s;
	*value = v;
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
	char *line = NULL, *key, *value;
	const char *why;
	size_t cap = 0;
	ssize_t len;
	int lineno = 0, rc = 0;

	if (!f) {
		mlc_error(err, 0, "cannot read config '%s': %s", path, strerror(errno));
		return -1;
	}
	errno = 0;
	while ((len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		switch (mlc_config_parse_line(line, (size_t)len, &key, &value, &why)) {
		case 1:
			set_entry(key, value);
			continue;
		case 0:
			continue;
		}
		if (key)
			mlc_error(err, 0, "%s:%d: %s '%s'", path, lineno, why, key);
		else
			mlc_error(err, 0, "%s:%d: %s", path, lineno, why);
		rc = -1;
		break;
	}
	if (rc == 0 && ferror(f)) {
		mlc_error(err, 0, "cannot read config '%s': %s", path,
			    strerror(errno ? errno : EIO));
		rc = -1;
	}
	free(line);
	fclose(f);
	return rc;
}

const char *mlc_config_get(const char *key, const char *def)
{
	const char *env = getenv(key), *v = mlc_config_file_value(key);

	if (env && *env)
		return env;
	return v && *v ? v : def;
}

const char *mlc_config_file_value(const char *key)
{
	for (size_t i = 0; i < nentries; i++)
		if (!strcmp(entries[i].key, key))
			return entries[i].value;
	return NULL;
}

size_t mlc_config_count(void)
{
	return nentries;
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
