/* fuzz_cli.c: libFuzzer target: `cartoongan cartoonize`'s option parser. The input is split
 * at NUL bytes into arguments (after argv[0] = "cartoonize") and parsed with
 * cli_cartoonize_parse, which reads no image and writes no file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "fuzz.h"

#define MAX_ARGS 64

int fuzz_cli(const uint8_t *data, size_t size) {
    /* a NUL-terminated copy, so the last argument ends too */
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "cartoonize";
    for (size_t i = 0; i <= size && argc <= MAX_ARGS; i += strlen(buf + i) + 1) argv[argc++] = buf + i;
    argv[argc] = NULL;
    /* help and usage errors are the parser's normal output; keep them off the terminal */
    static FILE *null;
    if (!null) null = fopen("/dev/null", "w");
    FILE *out = stdout, *err = stderr;
    if (null) stdout = stderr = null;
    int r = cli_cartoonize_parse(argc, argv);
    stdout = out, stderr = err;
    if (r != -1 && r != 0 && r != 2) abort(); /* run, help, or a usage error: nothing else */
    free(buf);
    return 0;
}

FUZZ_TARGET(fuzz_cli)
