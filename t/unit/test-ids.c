/*
 * test-ids.c - the deployment-id rule (mlc_is_deployment_id) against the
 * shared examples in t/fixtures/deployment-ids.txt, which the spooler's
 * Python rule is tested against too (t/0010-unit-bundle.t).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate.h"
#include "tap.h"

#ifndef FIXTURE_DIR
#define FIXTURE_DIR "t/fixtures"
#endif

int main(void)
{
	FILE *f = fopen(FIXTURE_DIR "/deployment-ids.txt", "r");
	char line[512];
	int n = 0, good = 0, bad = 0;

	ok(f != NULL, "the fixture %s/deployment-ids.txt opens", FIXTURE_DIR);
	if (!f)
		return done_testing();
	while (fgets(line, sizeof(line), f)) {
		char *tab = strchr(line, '\t'), *id;
		int want;

		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if (!tab) {
			ok(0, "fixture line '%s' has a tab", line);
			continue;
		}
		*tab = '\0';
		id = tab + 1;
		want = !strcmp(line, "ok");
		want ? good++ : bad++;
		is_int(mlc_is_deployment_id(id), want, "'%s' is %s", id,
		       want ? "a deployment id" : "not a deployment id");
		n++;
	}
	fclose(f);
	ok(good >= 5 && bad >= 10, "the fixture has examples of both kinds (%d ok, %d bad)", good, bad);
	is_int(mlc_is_deployment_id(NULL), 0, "NULL is not a deployment id");
	{
		/* A long string is refused without reading past the 65th byte. */
		char *big = malloc(1 << 20);

		memset(big, 'a', (1 << 20) - 1);
		big[(1 << 20) - 1] = '\0';
		is_int(mlc_is_deployment_id(big), 0, "a 1 MiB id is refused");
		free(big);
	}
	(void)n;
	return done_testing();
}
