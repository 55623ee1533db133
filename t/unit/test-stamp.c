/*
 * test-stamp.c - ISO 8601 timestamps from clients, UUIDs and the
 * DATETIME <-> ISO conversion (answers end in "+00:00", as Python's
 * datetime.isoformat writes UTC; clients may send "Z" or any offset).
 */
#include <string.h>

#include "stamp.h"
#include "tap.h"

static void parses_to(const char *in, const char *want)
{
	char out[32] = "";
	int rc = mlc_parse_iso8601(in, out);

	ok(rc == 0 && !strcmp(out, want), "'%s' is %s UTC (got rc %d, '%s')", in, want, rc, out);
}

static void refused(const char *in, const char *why)
{
	char out[32];

	ok(mlc_parse_iso8601(in, out) < 0, "'%s' is refused: %s", in, why);
}

int main(void)
{
	char id[37];
	json_object *iso;

	parses_to("2026-11-27T05:32:26Z", "2026-11-27 05:32:26.000000");
	parses_to("2026-11-27T05:32:26", "2026-11-27 05:32:26.000000");
	parses_to("2026-11-27 05:32:26.5", "2026-11-27 05:32:26.500000");
	parses_to("2026-11-27T05:32:26.123456789Z", "2026-11-27 05:32:26.123456");
	parses_to("2026-01-01T00:30:00+01:00", "2025-12-31 23:30:00.000000");
	parses_to("2026-01-01T23:30:00-0130", "2026-01-02 01:00:00.000000");
	parses_to("2024-02-29T12:00:00+05", "2024-02-29 07:00:00.000000");
	parses_to("2026-11-27T05:32:26.123456+00:00", "2026-11-27 05:32:26.123456");
	parses_to("2026-11-27T05:32:26-00:00", "2026-11-27 05:32:26.000000");
	refused("", "empty");
	refused("2026-11-27", "no time");
	refused("2026-13-01T00:00:00Z", "month 13");
	refused("2026-02-30T00:00:00Z", "30 February");
	refused("2026-11-27T24:00:00Z", "hour 24");
	refused("2026-11-27T05:32:26ZZ", "trailing characters");
	refused("2026-11-27T05:32:26+25:00", "offset beyond 23 hours");
	refused("2026-11-27T05:32:26.", "a dot without digits");
	refused("0999-01-01T00:00:00Z", "before the year 1000");
	refused("9999-12-31T23:30:00-01:00", "after the year 9999 once in UTC");
	refused("+2026-11-27T05:32:26Z", "a signed year");
	refused("2026-11-27T05:32:26\n", "a line break");

	mlc_uuid4(id);
	ok(strlen(id) == 36 && id[8] == '-' && id[14] == '4' && strchr("89ab", id[19]),
	   "a generated id is a version 4 UUID (%s)", id);
	iso = mlc_iso_time("2026-11-27 05:32:26.123456");
	is_str(json_object_get_string(iso), "2026-11-27T05:32:26.123456+00:00",
	       "a DATETIME(6) is shown as ISO 8601 UTC with the offset +00:00, not Z");
	json_object_put(iso);
	iso = mlc_iso_time("2026-11-27 05:32:26");
	is_str(json_object_get_string(iso), "2026-11-27T05:32:26+00:00",
	       "a time without a fraction gets the offset too");
	json_object_put(iso);
	iso = mlc_iso_time("2026-11-27 05:32:26.123456789012345678901234567890");
	ok(iso && strlen(json_object_get_string(iso)) < 48 &&
	   !strcmp(json_object_get_string(iso) + strlen(json_object_get_string(iso)) - 6, "+00:00"),
	   "an overlong value is cut, and still ends in +00:00 (%s)", json_object_get_string(iso));
	json_object_put(iso);
	ok(mlc_iso_time(NULL) == NULL, "a NULL time stays null");
	return done_testing();
}
