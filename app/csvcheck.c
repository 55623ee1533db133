/*
 * csvcheck.c - a streaming check that uploaded training data is CSV with
 * a header row (RFC 4180), without keeping any of it: the state is a few
 * counters, so a file of any size is checked in constant memory.
 *
 * The rules, where RFC 4180 or common readers leave room:
 *  - Line breaks are LF or CRLF, and may differ from line to line.  A CR
 *    that is not followed by LF is an error outside quotes (old Mac line
 *    ends would otherwise be read as one endless line) and data inside.
 *  - A field is quoted only when its first byte is a quote.  A quote in
 *    the middle of an unquoted field is data (5'11" or a"b), as Python's
 *    csv module and pandas read it.  After a closing quote only a comma,
 *    a line break or the end may follow: "ab"c is an error, because
 *    readers disagree on what it means.
 *  - A blank line is not a record (pandas skips them).  Blank lines at
 *    the end are allowed; anywhere else they are an error naming the
 *    first one, reported when the next record starts.
 *  - A header column name must not be empty or only spaces and tabs.
 *  - Lines are counted physically, so a quoted field with line breaks
 *    makes its record span several lines; errors about a whole record
 *    name the line it starts on, and an unterminated quote names the line
 *    where the quote opened.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mlc.h"
#include "csvcheck.h"

enum csv_state {
	CSV_RECORD,	/* at the start of a line, nothing of a record read */
	CSV_FIELD,	/* at the start of a field after a comma */
	CSV_UNQUOTED,	/* inside an unquoted field */
	CSV_QUOTED,	/* inside a quoted field */
	CSV_QUOTE,	/* read a quote inside a quoted field: "" or the end */
	CSV_CR,		/* read the CR of a record's CRLF */
	CSV_CR_BLANK,	/* read the CR of a blank line's CRLF */
};

void mlc_csv_init(struct mlc_csv *c)
{
	memset(c, 0, sizeof(*c));
	c->state = CSV_RECORD;
	c->line = 1;
}

/* Record why the data is not valid; returns -1 for the caller to pass on. */
__attribute__((format(printf, 2, 3)))
static int fail(struct mlc_csv *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
	va_end(ap);
	c->failed = 1;
	return -1;
}

static const char *plural(unsigned long n)
{
	return n == 1 ? "" : "s";
}

/* A field starts; first is its first byte, or -1 for an empty field. */
static void field_begin(struct mlc_csv *c, int first)
{
	c->field_len = first >= 0;
	c->field_blank = first < 0 || first == ' ' || first == '\t';
}

/* One more byte of field content. */
static int field_byte(struct mlc_csv *c, char ch)
{
	if (++c->field_len > MLC_CSV_MAX_FIELD)
		return fail(c, "line %lu: field %u is longer than %d bytes",
			    c->record_line, c->field + 1, MLC_CSV_MAX_FIELD);
	if (ch != ' ' && ch != '\t')
		c->field_blank = 0;
	return 0;
}

/* The current field ended (at a comma or the end of its record). */
static int field_end(struct mlc_csv *c)
{
	if (!c->have_header && c->field_blank)
		return fail(c, "line %lu: empty column name in the header (column %u)",
			    c->record_line, c->field + 1);
	if (++c->field > MLC_CSV_MAX_COLUMNS)
		return fail(c, "line %lu has more than %d fields", c->record_line,
			    MLC_CSV_MAX_COLUMNS);
	return 0;
}

/* The current record ended: it is the header, or must match it. */
static int record_end(struct mlc_csv *c)
{
	if (field_end(c) < 0)
		return -1;
	if (!c->have_header) {
		c->have_header = 1;
		c->columns = c->field;
	} else if (c->field != c->columns) {
		return fail(c, "line %lu has %u field%s, the header has %u",
			    c->record_line, c->field, plural(c->field), c->columns);
	} else {
		c->rows++;
	}
	return 0;
}

/* The first byte of a non-blank line starts a record. */
static int record_begin(struct mlc_csv *c)
{
	if (c->blank_line)
		return fail(c, "line %lu is empty", c->blank_line);
	c->record_line = c->line;
	c->field = 0;
	return 0;
}

/*
 * A line break outside quotes ends the record.  For CRLF the record is
 * ended at the LF, so that a stray CR is reported as such rather than as
 * a record with too few fields.
 */
static int line_break(struct mlc_csv *c, char ch)
{
	if (ch == '\r') {
		c->state = CSV_CR;
		return 0;
	}
	c->line++;
	c->state = CSV_RECORD;
	return record_end(c);
}

/* A byte where a field may start: at a record's start or after a comma. */
static int at_field_start(struct mlc_csv *c, char ch)
{
	switch (ch) {
	case '"':
		field_begin(c, -1);
		c->quote_line = c->line;
		c->state = CSV_QUOTED;
		return 0;
	case ',':
		field_begin(c, -1);
		c->state = CSV_FIELD;
		return field_end(c);
	case '\r':
	case '\n':
		field_begin(c, -1);
		return line_break(c, ch);
	default:
		field_begin(c, (unsigned char)ch);
		c->state = CSV_UNQUOTED;
		return 0;
	}
}

/* A byte at the start of a line: a blank line, or a record begins. */
static int at_record_start(struct mlc_csv *c, char ch)
{
	if (ch == '\n' || ch == '\r') {
		if (!c->blank_line)
			c->blank_line = c->line;
		if (ch == '\r')
			c->state = CSV_CR_BLANK;
		else
			c->line++;
		return 0;
	}
	if (record_begin(c) < 0)
		return -1;
	return at_field_start(c, ch);
}

/* A byte after a quote inside a quoted field. */
static int after_quote(struct mlc_csv *c, char ch)
{
	switch (ch) {
	case '"':
		c->state = CSV_QUOTED;
		return field_byte(c, ch);
	case ',':
		c->state = CSV_FIELD;
		return field_end(c);
	case '\r':
	case '\n':
		return line_break(c, ch);
	default:
		return fail(c, "line %lu: text after the closing quote of field %u",
			    c->line, c->field + 1);
	}
}

/* One byte in state c->state; returns 0 or -1 (with c->msg set). */
static int step(struct mlc_csv *c, char ch)
{
	if (ch == '\0')
		return fail(c, "line %lu: NUL byte", c->line);
	switch (c->state) {
	case CSV_RECORD:
		return at_record_start(c, ch);
	case CSV_FIELD:
		return at_field_start(c, ch);
	case CSV_UNQUOTED:
		if (ch == ',') {
			c->state = CSV_FIELD;
			return field_end(c);
		}
		if (ch == '\r' || ch == '\n')
			return line_break(c, ch);
		return field_byte(c, ch);
	case CSV_QUOTED:
		if (ch == '"') {
			c->state = CSV_QUOTE;
			return 0;
		}
		if (ch == '\n')
			c->line++;
		return field_byte(c, ch);
	case CSV_QUOTE:
		return after_quote(c, ch);
	default:	/* CSV_CR, CSV_CR_BLANK */
		if (ch != '\n')
			return fail(c, "line %lu: CR not followed by LF", c->line);
		if (c->state == CSV_CR)
			return line_break(c, ch);
		c->line++;
		c->state = CSV_RECORD;
		return 0;
	}
}

/* Feed the next len bytes; see csvcheck.h. */
int mlc_csv_feed(struct mlc_csv *c, const char *data, size_t len)
{
	if (c->failed)
		return -1;
	if (len)
		c->saw_any = 1;
	for (size_t i = 0; i < len; i++)
		if (step(c, data[i]) < 0)
			return -1;
	return 0;
}

/* End of data: finish the last record if it had no line break, then
 * check that a header was seen. */
int mlc_csv_finish(struct mlc_csv *c)
{
	if (c->failed)
		return -1;
	switch (c->state) {
	case CSV_QUOTED:
		return fail(c, "line %lu: unterminated quoted field", c->quote_line);
	case CSV_CR:
	case CSV_CR_BLANK:
		return fail(c, "line %lu: CR not followed by LF", c->line);
	case CSV_FIELD:
	case CSV_UNQUOTED:
	case CSV_QUOTE:
		if (record_end(c) < 0)
			return -1;
		c->state = CSV_RECORD;
		break;
	default:
		break;
	}
	if (!c->saw_any)
		return fail(c, "the file is empty");
	if (!c->have_header)
		return fail(c, "the file has no header row");
	return 0;
}

/* Why the data was refused, or "" while it has not been. */
const char *mlc_csv_error(const struct mlc_csv *c)
{
	return c->msg;
}

int mlc_csv_check_utf8(const char *data, size_t len, char *msg, size_t msglen)
{
	unsigned long line = 1;
	size_t i = 0, n, bad;

	while (i < len) {
		if (!(n = mlc_utf8_seq(data + i, len - i, &bad))) {
			/* Named by its first byte, the one a person can look for
			 * (0xe9 of a Latin-1 "é"), not the one that gave it away. */
			snprintf(msg, msglen, "line %lu has a byte that is not UTF-8 (0x%02x)", line,
				 (unsigned char)data[i]);
			return -1;
		}
		line += data[i] == '\n';
		i += n;
	}
	return 0;
}
