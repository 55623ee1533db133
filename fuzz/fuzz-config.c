/*
 * fuzz-config.c - libFuzzer target for mlc_config_parse_line, the line
 * reader of the config file.  The input is cut at '\n' into lines, as
 * mlc_config_load does; each answer is checked: a key is a valid name and
 * lies in the line, a value holds no '\n' and ends inside the line, an
 * error says why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int valid_key(const char *k)
{
	if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || *k == '_'))
		return 0;
	for (k++; *k; k++)
		if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || *k == '_' ||
		      (*k >= '0' && *k <= '9')))
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *line, *end, *key, *value;
	const char *why;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	for (line = buf; line <= buf + size; line = end + 1) {
		size_t len;
		int rc;

		end = memchr(line, '\n', (size_t)(buf + size - line));
		if (!end)
			end = buf + size;
		len = (size_t)(end - line);
		*end = '\0';
		rc = mlc_config_parse_line(line, len, &key, &value, &why);
		if (rc == 1) {
			if (!valid_key(key) || key < line || key > end || value < line || value > end ||
			    value + strlen(value) > end || why)
				abort();
		} else if (rc == 0) {
			if (key || value || why)
				abort();
		} else if (rc != -1 || !why || value || (key && (key < line || key > end))) {
			abort();
		}
		if (end == buf + size)
			break;
	}
	free(buf);
	return 0;
}
