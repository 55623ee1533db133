/*
 * csvcheck.h - a streaming check that uploaded training data is CSV
 * (RFC 4180: comma separated, optional "quoted" fields with "" escapes,
 * CRLF or LF line ends) with a header row.
 */
#ifndef MLC_CSVCHECK_H
#define MLC_CSVCHECK_H

#include <stddef.h>

#define MLC_CSV_MAX_FIELD (1 << 20)	/* bytes in one field */
#define MLC_CSV_MAX_COLUMNS 10000

struct mlc_csv {
	/* results, valid after mlc_csv_finish */
	unsigned long rows;		/* data rows, not counting the header */
	unsigned columns;		/* fields in the header row */
	/* private state */
	int state;			/* enum csv_state, in csvcheck.c */
	int failed;			/* msg says why; every later call fails */
	int have_header;		/* the header row has been read */
	int saw_any;			/* a byte has been fed */
	unsigned long line;		/* 1-based physical line being read */
	unsigned long record_line;	/* line where the current record started */
	unsigned long quote_line;	/* line of the current field's open quote */
	unsigned long blank_line;	/* first of the blank lines just read, or 0 */
	unsigned field;			/* fields ended so far in the current record */
	size_t field_len;		/* bytes in the current field (unquoted) */
	int field_blank;		/* the current field is only spaces and tabs */
	char msg[256];
};

void mlc_csv_init(struct mlc_csv *c);
/* Feed the next bytes; returns 0, or -1 once the data is known not to be
 * CSV with a header (then mlc_csv_error says why, naming the line). */
int mlc_csv_feed(struct mlc_csv *c, const char *data, size_t len);
/* End of data; returns 0 when the whole input is valid: a non-empty header
 * row with no empty column names, every record with as many fields as the
 * header, no unterminated quote, no NUL byte.  A final line break is
 * optional; blank lines at the end are allowed.  (Details in csvcheck.c:
 * a quote inside an unquoted field is data; text after a closing quote,
 * a CR without LF outside quotes and a blank line before more records
 * are errors.) */
int mlc_csv_finish(struct mlc_csv *c);
const char *mlc_csv_error(const struct mlc_csv *c);

/* Whether data[0..len) is UTF-8 text (see mlc_utf8_check), as a data
 * link's CSV must be: the runtime reads it as UTF-8.  Returns 0, or -1
 * with msg naming the line: "line 3 has a byte that is not UTF-8 (0xe9)". */
int mlc_csv_check_utf8(const char *data, size_t len, char *msg, size_t msglen);

#endif
