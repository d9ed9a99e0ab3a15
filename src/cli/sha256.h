/* sha256.h: SHA-256 (FIPS 180-4), for `cartoongan fetch-weights` to check that what it
 * downloaded is the release's own bytes before converting it. */
#ifndef CG_CLI_SHA256_H
#define CG_CLI_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t bytes;   /* message length so far */
    uint8_t buf[64];  /* a partial block */
    size_t nbuf;
} cli_sha256;

void cli_sha256_init(cli_sha256 *s);
void cli_sha256_update(cli_sha256 *s, const void *data, size_t n);
/* Finishes and writes the digest as 64 lower-case hex digits and a NUL. */
void cli_sha256_hex(cli_sha256 *s, char hex[65]);

#endif
