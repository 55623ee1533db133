/*
 * stamp.h - identifiers and timestamps as the API shows them.
 */
#ifndef MLC_STAMP_H
#define MLC_STAMP_H

#include <json-c/json.h>

/* A random (version 4) UUID in canonical lowercase text form. */
void mlc_uuid4(char out[37]);

/* The current UTC time as a DATETIME(6) literal "YYYY-MM-DD HH:MM:SS.ffffff". */
void mlc_now_utc(char out[32]);

/* A DATETIME(6) value as ISO 8601 UTC ("...T...Z"); NULL for NULL. */
json_object *mlc_iso_time(const char *datetime);

#endif
