/* test_regressions.c: replays the fuzz targets' inputs without libFuzzer: every file in
 * tests/fuzz/regressions/<target>/ (the inputs that once crashed, leaked or hung, kept after
 * the fix) and in tests/fuzz/corpus/<target>/ (the seeds) goes through the same entry point
 * as in `make fuzz`. A crash fails the run loudly; under `make asan` so does any memory error.
 * A folder naming no known target fails too, so a regression is never silently skipped.
 * Run from the repository root. */
#include <dirent.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "fuzz/fuzz.h"
#include "test.h"

static const struct {
    const char *name;
    int (*fn)(const uint8_t *, size_t);
} targets[] = {
    {"fuzz_jpeg", fuzz_jpeg},
    {"fuzz_png", fuzz_png},
    {"fuzz_webp", fuzz_webp},
    {"fuzz_heif", fuzz_heif},
    {"fuzz_npy", fuzz_npy},
    {"fuzz_safetensors", fuzz_safetensors},
    {"fuzz_cli", fuzz_cli},
    {"fuzz_gif", fuzz_gif},
    {"fuzz_serve", fuzz_serve},
    {"fuzz_webp_anim", fuzz_webp_anim},
    {"fuzz_tfckpt", fuzz_tfckpt},
};
#define NUM_TARGETS ((int)(sizeof targets / sizeof targets[0]))

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0, k;
    uint8_t *buf = malloc(cap);
    while (buf && (k = fread(buf + len, 1, cap - len, f)) > 0) {
        len += k;
        if (len == cap) {
            uint8_t *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    fclose(f);
    *n = len;
    return buf;
}

static long peak_rss_mb(void) {
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss / 1024 : 0;
}

/* Feeds every file of dir to fn; returns how many, or -1 if dir is missing. */
static int replay_dir(const char *dir, int (*fn)(const uint8_t *, size_t)) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        size_t n = 0;
        uint8_t *buf = read_all(path, &n);
        CHECK(buf != NULL, "%s: cannot read", path);
        if (!buf) continue;
        long rss0 = peak_rss_mb();
        clock_t t0 = clock();
        fn(buf, n);
        double s = (double)(clock() - t0) / CLOCKS_PER_SEC;
        /* a hang or a memory blow-up once found must not come back as a slowdown or as a
         * big allocation that happens to succeed here (the targets' own limits keep real
         * inputs far below both) */
        CHECK(s < 10, "%s: took %.1f s", path, s);
        CHECK(rss0 >= 512 || peak_rss_mb() < 512, "%s: peak memory %ld MB", path, peak_rss_mb());
        free(buf);
        count++;
    }
    closedir(d);
    return count;
}

static int find_target(const char *name) {
    for (int i = 0; i < NUM_TARGETS; i++)
        if (!strcmp(targets[i].name, name)) return i;
    return -1;
}

static void test_regressions(void) {
    const char *root = "tests/fuzz/regressions";
    DIR *d = opendir(root);
    CHECK(d != NULL, "%s: missing (run from the repository root)", root);
    if (!d) return;
    struct dirent *e;
    int total = 0;
    while ((e = readdir(d))) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", root, e->d_name);
        struct stat st;
        if (e->d_name[0] == '.' || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        int t = find_target(e->d_name);
        CHECK(t >= 0, "%s/%s: no fuzz target of that name in test_regressions.c", root, e->d_name);
        if (t < 0) continue;
        int n = replay_dir(dir, targets[t].fn);
        if (n > 0) total += n;
    }
    closedir(d);
    printf("  %d regression inputs replayed\n", total);
}

static void test_seed_corpora(void) {
    for (int t = 0; t < NUM_TARGETS; t++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", targets[t].name);
        int n = replay_dir(dir, targets[t].fn);
        CHECK(n > 0, "%s: no seed inputs", dir);
    }
}

int main(void) {
    RUN(test_regressions);
    RUN(test_seed_corpora);
    return TEST_SUMMARY("test_regressions");
}
