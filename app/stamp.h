/*
 * stamp.h - identifiers and timestamps as the API shows them.
 */
#ifndef MLC_STAMP_H
#define MLC_STAMP_H

#include <json-c/json.h>

/* A random (version 4) UUID in canonical lowercase text form. */
void mlc_uuid4(char out[37]);

/* A DATETIME(6) value as ISO 8601 UTC ("2026-11-27T05:32:26.123456+00:00",
 * the form Python's datetime.fromisoformat reads in every version); NULL
 * for NULL. */
json_object *mlc_iso_time(const char *datetime);

/*
 * Parse an ISO 8601 date-time from a client ("2026-11-27T05:32:26Z",
 * "2026-11-27 05:32:26.5+02:00", "2026-11-27T05:32:26"; no offset means
 * UTC) into a UTC DATETIME(6) literal.  Returns 0, or -1 when s is not
 * such a time or lies outside the years 1000 to 9999.
 */
int mlc_parse_iso8601(const char *s, char out[32]);

#endif
