/* test.h: the tiny test harness shared by the C test programs. A test is a function; it
 * passes when none of its CHECKs fails. Each program ends with "NAME: P passed, F failed",
 * which tests/run.sh adds up. */
#ifndef CG_TEST_H
#define CG_TEST_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int test_failed_checks; /* in the running test */
static int tests_passed, tests_failed;

#define CHECK(cond, ...)                                                         \
    do {                                                                         \
        if (!(cond)) {                                                           \
            test_failed_checks++;                                                \
            fprintf(stderr, "  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);    \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
        }                                                                        \
    } while (0)

#define RUN(fn)                                                                  \
    do {                                                                         \
        test_failed_checks = 0;                                                  \
        fn();                                                                    \
        if (test_failed_checks) { tests_failed++; printf("FAIL %s\n", #fn); }    \
        else { tests_passed++; printf("ok   %s\n", #fn); }                       \
        fflush(stdout);                                                          \
    } while (0)

#define TEST_SUMMARY(name)                                                       \
    (printf("%s: %d passed, %d failed\n", name, tests_passed, tests_failed),    \
     tests_failed ? 1 : 0)

/* A fresh directory /tmp/NAME.XXXXXX for a program's files, into dir (n bytes); 0, or -1
 * with a message. test_remove_dir removes it and everything in it at the end. */
static inline int test_make_dir(char *dir, size_t n, const char *name) {
    snprintf(dir, n, "/tmp/%s.XXXXXX", name);
    if (mkdtemp(dir)) return 0;
    perror("mkdtemp");
    return -1;
}

static inline int test_remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static inline void test_remove_dir(const char *dir) {
    if (nftw(dir, test_remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

#endif
