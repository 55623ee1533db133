/*
 * fuzz-time.c - client timestamps (mlc_parse_iso8601): never crash, and
 * whatever is accepted is a well-formed DATETIME(6) that parses again to
 * itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stamp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char in[128], out[32], again[32], iso[40];

	if (size >= sizeof(in))
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';
	if (mlc_parse_iso8601(in, out) < 0)
		return 0;
	if (strlen(out) != 26 || out[10] != ' ')
		abort();
	memcpy(iso, out, 27);
	iso[10] = 'T';
	if (mlc_parse_iso8601(iso, again) < 0 || strcmp(out, again))
		abort();
	return 0;
}
