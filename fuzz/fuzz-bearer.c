/*
 * fuzz-bearer.c - libFuzzer target for mlc_bearer_parse (the Authorization
 * header) and mlc_host_is_loopback.  The input, cut at its first NUL
 * byte as a C string would be, is the header value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bearer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), tok[MLC_TOKEN_LEN + 1];
	enum mlc_bearer_rc rc;

	memcpy(s, data, size);
	s[size] = '\0';
	rc = mlc_bearer_parse(s, tok);
	/* A token comes out only when it has the token's shape and appears
	 * in the header as it is. */
	if (rc == MLC_BEARER_OK && (!mlc_token_well_formed(tok) || !strstr(s, tok)))
		abort();
	if (rc != MLC_BEARER_OK && tok[0])
		abort();
	(void)mlc_host_is_loopback(s);
	free(s);
	return 0;
}
