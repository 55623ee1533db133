/*
 * tap.h - a small Test Anything Protocol producer for the C unit tests.
 *
 * Each test program includes this once and reads like a Perl test:
 *
 *	ok(cond, "title %d", n);
 *	is_int(got, want, "title");
 *	is_str(got, want, "title");
 *	return done_testing();
 *
 * A failed check prints where it is and, for is_*, what it got and what
 * it expected as "# " diagnostics, which prove(1) and automake's TAP
 * driver show.  done_testing() prints the plan when plan() was not called
 * and returns the exit status: nonzero when any check failed or the count
 * does not match the plan.  Everything here is static, so nothing clashes
 * with the code under test.
 */
#ifndef TAP_H
#define TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_planned __attribute__((unused)) = -1;
static int tap_run __attribute__((unused));
static int tap_failed __attribute__((unused));

#define ok(cond, ...) \
	tap_ok_at(__FILE__, __LINE__, !!(cond), __VA_ARGS__)
#define is_int(got, want, ...) \
	tap_is_int_at(__FILE__, __LINE__, (long long)(got), (long long)(want), __VA_ARGS__)
#define is_str(got, want, ...) \
	tap_is_str_at(__FILE__, __LINE__, (got), (want), __VA_ARGS__)

/* Announce how many checks will run; optional (see done_testing). */
static inline void plan(int n)
{
	tap_planned = n;
	printf("1..%d\n", n);
	fflush(stdout);
}

/* Print a "# " diagnostic line on stdout, where TAP consumers keep it in
 * order with the results. */
__attribute__((format(printf, 1, 2)))
static inline void diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

/* A title may come from test data: keep it on one line and escape '#',
 * which would otherwise start a TAP directive. */
static inline void tap_put_title(const char *t)
{
	for (; *t; t++) {
		if (*t == '\n' || *t == '\r')
			fputc(' ', stdout);
		else if (*t == '#')
			fputs("\\#", stdout);
		else
			fputc(*t, stdout);
	}
}

/* Print s quoted, with bytes that would garble the output escaped. */
static inline void tap_put_quoted(const char *s)
{
	if (!s) {
		fputs("NULL", stdout);
		return;
	}
	fputc('\'', stdout);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			printf("\\x%02x", *p);
		else
			fputc(*p, stdout);
	}
	fputc('\'', stdout);
}

__attribute__((format(printf, 4, 0)))
static inline int tap_vreport(const char *file, int line, int pass,
			      const char *fmt, va_list ap)
{
	char title[512];

	vsnprintf(title, sizeof(title), fmt, ap);
	tap_run++;
	printf("%sok %d - ", pass ? "" : "not ", tap_run);
	tap_put_title(title);
	fputc('\n', stdout);
	if (!pass) {
		tap_failed++;
		fputs("#   Failed test '", stdout);
		tap_put_title(title);
		printf("'\n#   at %s line %d.\n", file, line);
	}
	fflush(stdout);
	return pass;
}

__attribute__((format(printf, 4, 5)))
static inline int tap_ok_at(const char *file, int line, int pass, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_vreport(file, line, pass, fmt, ap);
	va_end(ap);
	return pass;
}

__attribute__((format(printf, 5, 6)))
static inline int tap_is_int_at(const char *file, int line, long long got, long long want,
				const char *fmt, ...)
{
	int pass = got == want;
	va_list ap;

	va_start(ap, fmt);
	tap_vreport(file, line, pass, fmt, ap);
	va_end(ap);
	if (!pass)
		printf("#          got: %lld\n#     expected: %lld\n", got, want);
	return pass;
}

/* Two NULLs are equal; NULL and any string are not. */
__attribute__((format(printf, 5, 6)))
static inline int tap_is_str_at(const char *file, int line, const char *got, const char *want,
				const char *fmt, ...)
{
	int pass = (!got && !want) || (got && want && !strcmp(got, want));
	va_list ap;

	va_start(ap, fmt);
	tap_vreport(file, line, pass, fmt, ap);
	va_end(ap);
	if (!pass) {
		fputs("#          got: ", stdout);
		tap_put_quoted(got);
		fputs("\n#     expected: ", stdout);
		tap_put_quoted(want);
		fputc('\n', stdout);
	}
	fflush(stdout);
	return pass;
}

/* Print the plan if none was given, and return the exit status. */
static inline int done_testing(void)
{
	if (tap_planned < 0)
		printf("1..%d\n", tap_run);
	else if (tap_planned != tap_run)
		diag("planned %d tests but ran %d", tap_planned, tap_run);
	if (tap_failed)
		diag("failed %d of %d tests", tap_failed, tap_run);
	fflush(stdout);
	return tap_failed || (tap_planned >= 0 && tap_planned != tap_run);
}

#endif
