/*
 * test-config.c - mlc_config_load, the reader of conf/mlconnector.conf in
 * mlc-api, against the shared fixture t/fixtures/config-grammar.json (the
 * Python reader and scripts/mlc are tested against it too, in
 * t/0012-unit-config.t), and with odd input: long lines and keys, NUL
 * bytes, CRLF, bytes that are not UTF-8, a directory, a missing file; and
 * the environment's precedence.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "conf.h"
#include "tap.h"

#ifndef FIXTURE_DIR
#define FIXTURE_DIR "t/fixtures"
#endif

static char tmp_path[] = "/tmp/mlc-test-config.XXXXXX";

/* Write len bytes to the scratch file and load it afresh. */
static int load_bytes(const char *text, size_t len, struct mlc_err *err)
{
	FILE *f = fopen(tmp_path, "w");

	if (!f || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
		perror(tmp_path);
		exit(1);
	}
	mlc_config_release();
	err->msg[0] = '\0';
	return mlc_config_load(tmp_path, err);
}

static int load_bytes_str(const char *text, struct mlc_err *err)
{
	return load_bytes(text, strlen(text), err);
}

/* The text after "path:line: " of an error, and the line number. */
static const char *error_part(const char *msg, const char *path, long *line)
{
	size_t n = strlen(path);
	char *end;

	*line = -1;
	if (strncmp(msg, path, n) || msg[n] != ':')
		return msg;
	*line = strtol(msg + n + 1, &end, 10);
	return !strncmp(end, ": ", 2) ? end + 2 : msg;
}

/* A short, printable title for a case's text. */
static const char *shown(const char *text, size_t len)
{
	static char buf[80];
	size_t o = 0;

	for (size_t i = 0; i < len && o + 5 < sizeof(buf); i++) {
		unsigned char c = (unsigned char)text[i];

		if (c >= 0x20 && c < 0x7f && c != '#') {
			buf[o++] = (char)c;
		} else {
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "\\x%02x", c);
		}
	}
	buf[o] = '\0';
	return buf;
}

/* The values read are exactly want (an object of strings). */
static void check_values(json_object *want, const char *title)
{
	size_t n = 0;

	json_object_object_foreach(want, key, val) {
		const char *got = mlc_config_file_value(key);
		const char *exp = json_object_get_string(val);

		n++;
		if (!got || strlen(got) != (size_t)json_object_get_string_len(val) || strcmp(got, exp)) {
			is_str(got, exp, "%s: %s", title, key);
			return;
		}
	}
	is_int(mlc_config_count(), n, "%s: all %zu keys, no others", title, n);
}

static void test_fixture(void)
{
	json_object *doc = json_object_from_file(FIXTURE_DIR "/config-grammar.json"), *cases;
	struct mlc_err err;
	size_t i, n;

	ok(doc != NULL, "the fixture config-grammar.json parses");
	if (!doc)
		return;

	mlc_config_release();
	is_int(mlc_config_load(FIXTURE_DIR "/config-grammar.conf", &err), 0,
	       "config-grammar.conf loads");
	check_values(json_object_object_get(doc, "file"), "config-grammar.conf");

	cases = json_object_object_get(doc, "good");
	n = json_object_array_length(cases);
	ok(n >= 20, "the fixture has good cases (%zu)", n);
	for (i = 0; i < n; i++) {
		json_object *c = json_object_array_get_idx(cases, i);
		json_object *text = json_object_object_get(c, "text");
		const char *t = json_object_get_string(text);
		size_t len = (size_t)json_object_get_string_len(text);
		char title[128];
		int rc = load_bytes(t, len, &err);

		snprintf(title, sizeof(title), "'%s'", shown(t, len));
		if (!is_int(rc, 0, "%s loads", title)) {
			diag("error: %s", err.msg);
			continue;
		}
		check_values(json_object_object_get(c, "values"), title);
	}

	cases = json_object_object_get(doc, "bad");
	n = json_object_array_length(cases);
	ok(n >= 20, "the fixture has bad cases (%zu)", n);
	for (i = 0; i < n; i++) {
		json_object *c = json_object_array_get_idx(cases, i);
		json_object *text = json_object_object_get(c, "text");
		const char *t = json_object_get_string(text);
		const char *want = json_object_get_string(json_object_object_get(c, "error"));
		size_t len = (size_t)json_object_get_string_len(text);
		long line, want_line = json_object_get_int(json_object_object_get(c, "line"));
		const char *got;

		is_int(load_bytes(t, len, &err), -1, "'%s' is refused", shown(t, len));
		got = error_part(err.msg, tmp_path, &line);
		is_str(got, want, "'%s': the message", shown(t, len));
		is_int(line, want_line, "'%s': names line %ld", shown(t, len), want_line);
	}
	json_object_put(doc);
}

static void test_odd_input(void)
{
	struct mlc_err err;
	size_t big = 1 << 20;
	char *text = malloc(big + 64);
	long line;

	/* A line far longer than any buffer is read whole, not in pieces
	 * that would each be taken for a line. */
	memcpy(text, "LONG=", 5);
	memset(text + 5, 'v', big);
	memcpy(text + 5 + big, "\nNEXT=1\n", 9);
	is_int(load_bytes(text, strlen(text), &err), 0, "a 1 MiB value loads");
	is_int(strlen(mlc_config_file_value("LONG") ? mlc_config_file_value("LONG") : ""), big,
	       "and is read whole");
	is_str(mlc_config_file_value("NEXT"), "1", "the line after it is its own line");
	is_int(mlc_config_count(), 2, "no piece of the long line became a key");

	/* A long line holding '=' past the 4096th byte, and then junk. */
	memset(text, 'K', big);
	memcpy(text + big, "=x\n", 4);
	is_int(load_bytes(text, strlen(text), &err), 0, "a 1 MiB key loads");
	is_int(mlc_config_count(), 1, "as one key");
	memset(text, 'x', big);
	text[4100] = ' ';
	memcpy(text + big, "=1\n", 4);
	is_int(load_bytes(text, strlen(text), &err), -1, "a 1 MiB key with a blank in it is refused");
	ok(strlen(err.msg) < MLC_ERR_MAX, "the message is cut to the error buffer");
	free(text);

	/* NUL bytes, wherever they are, stop the load on their line. */
	is_int(load_bytes("A=1\nB=2\0\n", 9, &err), -1, "a NUL at a line end is refused");
	is_str(error_part(err.msg, tmp_path, &line), "NUL byte", "as a NUL byte");
	is_int(line, 2, "on its line");
	is_int(load_bytes("A=1\n\0", 5, &err), -1, "a NUL as the last byte is refused");
	is_int(load_bytes("\0\0\0", 3, &err), -1, "a file of NULs is refused");
	is_str(mlc_config_file_value("A"), NULL, "and holds no keys");

	/* CRLF, CR alone, bytes that are not UTF-8. */
	is_int(load_bytes_str("A=1\r\nB='2'\r\nC=\"3\" # c\r\n", &err), 0, "a CRLF file loads");
	is_str(mlc_config_file_value("C"), "3", "the CR is no part of a value");
	is_int(load_bytes_str("A=1\rB=2\n", &err), 0, "a CR alone ends no line");
	is_str(mlc_config_file_value("A"), "1\rB=2", "it is part of the value");
	is_int(load_bytes_str("A=\xff\xfe\x80\xc3\n", &err), 0, "bytes that are not UTF-8 load");
	is_str(mlc_config_file_value("A"), "\xff\xfe\x80\xc3", "as they are");

	/* Many lines, most of them keys. */
	{
		size_t n = 100000, used = 0;
		char *many = malloc(n * 24);

		for (size_t i = 0; i < n; i++)
			used += (size_t)sprintf(many + used, i % 3 ? "K%zu=%zu\n" : "# %zu\n", i % 1000, i);
		is_int(load_bytes(many, used, &err), 0, "100000 lines load");
		is_int(mlc_config_count(), 1000, "to the 1000 distinct keys");
		is_str(mlc_config_file_value("K998"), "99998", "the last line of a key wins");
		free(many);
	}

	mlc_config_release();
	is_int(mlc_config_load("/nonexistent/mlc.conf", &err), -1, "a missing file is an error");
	ok(strstr(err.msg, "cannot read config '/nonexistent/mlc.conf'") != NULL,
	   "that names the file (%s)", err.msg);
	is_int(mlc_config_load("/tmp", &err), -1, "a directory is an error, not an empty file");
	ok(strstr(err.msg, "cannot read config '/tmp'") != NULL, "that names it (%s)", err.msg);
}

static void test_parse_line(void)
{
	char buf[64], *key, *value;
	const char *why;

	strcpy(buf, "  export A = \"x\"  # c");
	is_int(mlc_config_parse_line(buf, strlen(buf), &key, &value, &why), 1, "parse_line: a key");
	is_str(key, "A", "parse_line: its name");
	is_str(value, "x", "parse_line: its value");
	strcpy(buf, "   # c");
	is_int(mlc_config_parse_line(buf, strlen(buf), &key, &value, &why), 0, "parse_line: a comment");
	ok(!key && !value && !why, "parse_line: a comment sets nothing");
	strcpy(buf, "A=\"x");
	is_int(mlc_config_parse_line(buf, strlen(buf), &key, &value, &why), -1, "parse_line: an error");
	ok(key == NULL && !strcmp(why, "no closing \" quote"), "parse_line: why, and no key");
	strcpy(buf, "A B=1");
	is_int(mlc_config_parse_line(buf, strlen(buf), &key, &value, &why), -1, "parse_line: a bad key");
	is_str(key, "A B", "parse_line: the key is named");
	memcpy(buf, "A=1\0\r", 6);
	is_int(mlc_config_parse_line(buf, 5, &key, &value, &why), -1, "parse_line: a NUL before a CR");
	is_str(why, "NUL byte", "parse_line: is a NUL byte");
	buf[0] = '\0';
	is_int(mlc_config_parse_line(buf, 0, &key, &value, &why), 0, "parse_line: an empty line");
}

static void test_environment(void)
{
	struct mlc_err err;
	const char *text = "MLC_T_A=file\nMLC_T_B=\nMLC_T_C=file\nMLC_T_N=12\nMLC_T_BAD=12x\n";

	is_int(load_bytes(text, strlen(text), &err), 0, "a file for the environment checks loads");
	setenv("MLC_T_A", "env", 1);
	setenv("MLC_T_C", "", 1);
	is_str(mlc_config_get("MLC_T_A", "def"), "env", "a non-empty variable wins over the file");
	is_str(mlc_config_get("MLC_T_C", "def"), "file", "an empty variable counts as unset");
	is_str(mlc_config_get("MLC_T_B", "def"), "def", "an empty file value means the default");
	is_str(mlc_config_file_value("MLC_T_B"), "", "though the file has the key");
	is_str(mlc_config_get("MLC_T_NONE", "def"), "def", "an absent key is the default");
	is_int(mlc_config_long("MLC_T_N", 5), 12, "an integer");
	is_int(mlc_config_long("MLC_T_BAD", 5), 5, "a value that is no integer is the default");
	unsetenv("MLC_T_A");
	unsetenv("MLC_T_C");
	is_str(mlc_config_get("MLC_T_A", "def"), "file", "without the variable the file counts");
}

int main(void)
{
	int fd = mkstemp(tmp_path);

	if (fd < 0) {
		perror("mkstemp");
		return 1;
	}
	close(fd);
	test_fixture();
	test_odd_input();
	test_parse_line();
	test_environment();
	mlc_config_release();
	unlink(tmp_path);
	return done_testing();
}
