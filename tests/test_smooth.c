/* test_smooth.c: tests for src/io/smooth.c, the edge-promoting step of `cartoongan
 * smooth`. Every fixture in tests/data/smooth/ (made by tools/make_smooth_fixtures.py
 * with OpenCV and the seed's smooth.py loop) must come out pixel for pixel: the gray
 * image, the Canny edge map and the smoothed output. Run from the repository root.
 *
 * `test_smooth same A B` instead decodes two image files and says whether their pixels
 * are equal (exit 0) or not (exit 1), for tests/test_smooth_cli.sh, which checks the
 * command's PNG output against the fixtures with it. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"
#include "io/smooth.h"
#include "test.h"

#define DATA "tests/data/smooth/"
#define MIN_FIXTURES 23 /* what make_smooth_fixtures.py writes; fewer means files went missing */

static int load(cg_image *img, const char *name, const char *suffix) {
    char path[512];
    snprintf(path, sizeof path, DATA "%s%s.png", name, suffix);
    if (cg_image_load(img, path, 0) != CG_OK) {
        fprintf(stderr, "  cannot load %s: %s\n", path, cg_last_error());
        return -1;
    }
    return 0;
}

/* Compares w*h pixels of `channels` bytes with a fixture loaded as RGB (a gray PNG comes
 * back with R = G = B, so channel 0 is the value); reports the first difference and the
 * count. Returns the number of differing pixels. */
static long compare(const char *what, const char *name, const uint8_t *got, int channels,
                    const cg_image *want) {
    long bad = 0;
    int first = -1;
    size_t n = (size_t)want->w * want->h;
    for (size_t i = 0; i < n; i++) {
        int differs = 0;
        for (int c = 0; c < channels; c++) differs |= got[i * channels + c] != want->rgb[i * 3 + c];
        if (differs) {
            if (first < 0) first = (int)i;
            bad++;
        }
    }
    if (bad) {
        int x = first % want->w, y = first / want->w;
        fprintf(stderr, "  %s %s: %ld of %zu pixels differ; first at (%d,%d): got %d, want %d\n",
                name, what, bad, n, x, y, got[(size_t)first * channels],
                want->rgb[(size_t)first * 3]);
    }
    return bad;
}

/* Runs one fixture; returns 0 when everything matched. */
static int check_fixture(const char *name) {
    cg_image in = {0}, gray_ref = {0}, edges_ref = {0}, smooth_ref = {0};
    int result = -1;
    uint8_t *gray = NULL, *edges = NULL, *edges2 = NULL, *out = NULL;
    if (load(&in, name, "") || load(&gray_ref, name, "_gray") ||
        load(&edges_ref, name, "_edges") || load(&smooth_ref, name, "_smooth"))
        goto done;
    int w = in.w, h = in.h;
    CHECK(gray_ref.w == w && gray_ref.h == h && edges_ref.w == w && edges_ref.h == h &&
              smooth_ref.w == w && smooth_ref.h == h, "%s: fixture sizes differ", name);
    if (gray_ref.w != w || gray_ref.h != h || edges_ref.w != w || edges_ref.h != h ||
        smooth_ref.w != w || smooth_ref.h != h)
        goto done;
    size_t n = (size_t)w * h;
    gray = malloc(n), edges = malloc(n), edges2 = malloc(n), out = malloc(n * 3);
    if (!gray || !edges || !edges2 || !out) goto done;

    cg_rgb_to_gray(gray, in.rgb, n);
    long bad_gray = compare("gray", name, gray, 1, &gray_ref);
    /* Canny on the reference gray, so an edge failure is Canny's own */
    for (size_t i = 0; i < n; i++) gray[i] = gray_ref.rgb[i * 3];
    cg_status s1 = cg_canny(edges, gray, w, h, 100, 200);
    long bad_edges = s1 == CG_OK ? compare("edges", name, edges, 1, &edges_ref) : -1;
    memset(edges2, 77, n);
    cg_status s2 = cg_edge_smooth(out, in.rgb, w, h, edges2);
    long bad_out = s2 == CG_OK ? compare("smoothed", name, out, 3, &smooth_ref) : -1;
    long bad_edges2 = s2 == CG_OK ? compare("edges (cg_edge_smooth)", name, edges2, 1, &edges_ref) : -1;
    CHECK(s1 == CG_OK && s2 == CG_OK, "%s: %s", name, cg_last_error());
    CHECK(bad_gray == 0, "%s: gray differs", name);
    CHECK(bad_edges == 0, "%s: Canny edges differ", name);
    CHECK(bad_edges2 == 0, "%s: cg_edge_smooth's edge map differs", name);
    CHECK(bad_out == 0, "%s: smoothed output differs", name);
    result = bad_gray || bad_edges || bad_edges2 || bad_out || s1 != CG_OK || s2 != CG_OK;
done:
    free(gray);
    free(edges);
    free(edges2);
    free(out);
    cg_image_free(&in);
    cg_image_free(&gray_ref);
    cg_image_free(&edges_ref);
    cg_image_free(&smooth_ref);
    return result;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every input fixture in the folder (NAME.png, not NAME_gray/_edges/_smooth.png), so one
 * added by make_smooth_fixtures.py is never left out. */
static void test_fixtures_match_opencv(void) {
    DIR *d = opendir(DATA);
    CHECK(d != NULL, "cannot open " DATA);
    if (!d) return;
    char *names[256];
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) && count < 256) {
        const char *f = e->d_name;
        if (f[0] == '.' || !ends_with(f, ".png") || ends_with(f, "_gray.png") ||
            ends_with(f, "_edges.png") || ends_with(f, "_smooth.png"))
            continue;
        names[count] = strdup(f);
        if (names[count]) names[count][strlen(f) - 4] = '\0', count++;
    }
    closedir(d);
    qsort(names, (size_t)count, sizeof *names, cmp_names);
    CHECK(count >= MIN_FIXTURES, "only %d fixtures in " DATA, count);
    int failed = 0;
    for (int i = 0; i < count; i++) {
        failed += check_fixture(names[i]) != 0;
        free(names[i]);
    }
    printf("     %d fixtures, %d matched OpenCV pixel for pixel\n", count, count - failed);
}

/* The formula's corners and a value checked by hand: (9798*255 + 16384) >> 15 = 76. */
static void test_gray_formula(void) {
    const uint8_t rgb[] = {0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30};
    uint8_t g[6];
    cg_rgb_to_gray(g, rgb, 6);
    CHECK(g[0] == 0 && g[1] == 255, "black %d, white %d", g[0], g[1]);
    CHECK(g[2] == 76 && g[3] == 150 && g[4] == 29, "red %d green %d blue %d", g[2], g[3], g[4]);
    /* (9798*10 + 19235*20 + 3735*30 + 16384) >> 15 = 18 */
    CHECK(g[5] == 18, "(10,20,30) -> %d", g[5]);
}

/* A vertical step of contrast d has magnitude 4d beside it: d = 50 (200) is not above the
 * high threshold, so with nothing stronger it is no edge; d = 51 (204) is. */
static void test_canny_thresholds_strict(void) {
    enum { W = 12, H = 8 };
    uint8_t g[W * H], e[W * H];
    for (int d = 50; d <= 51; d++) {
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) g[y * W + x] = (uint8_t)(x < 6 ? 80 : 80 + d);
        CHECK(cg_canny(e, g, W, H, 100, 200) == CG_OK, "%s", cg_last_error());
        int edges = 0;
        for (int i = 0; i < W * H; i++) edges += e[i] == 255;
        /* one column of the two beside the step survives suppression (> left, >= right) */
        if (d == 50) CHECK(edges == 0, "d=50: %d edge pixels, want none", edges);
        else CHECK(edges == H && e[5] == 255, "d=51: %d edge pixels, want column 5", edges);
    }
    /* low > high is swapped, as OpenCV does */
    uint8_t e2[W * H];
    CHECK(cg_canny(e2, g, W, H, 200, 100) == CG_OK && !memcmp(e, e2, sizeof e), "swap");
}

static void test_bad_arguments(void) {
    uint8_t px[12] = {0}, out[12];
    CHECK(cg_canny(NULL, px, 2, 2, 100, 200) == CG_ERR_ARG, "null edges");
    CHECK(cg_canny(out, NULL, 2, 2, 100, 200) == CG_ERR_ARG, "null gray");
    CHECK(cg_canny(out, px, 0, 2, 100, 200) == CG_ERR_ARG, "zero width");
    CHECK(cg_edge_smooth(out, px, 2, -1, NULL) == CG_ERR_ARG, "negative height");
    CHECK(cg_edge_smooth(NULL, px, 2, 2, NULL) == CG_ERR_ARG, "null out");
    CHECK(cg_edge_smooth(px, px, 2, 2, NULL) == CG_ERR_ARG, "in place");
    CHECK(strstr(cg_last_error(), "cg_edge_smooth") != NULL, "message: %s", cg_last_error());
    CHECK(cg_edge_smooth(out, px, 2, 2, NULL) == CG_OK, "edges_out NULL: %s", cg_last_error());
    CHECK(!memcmp(out, px, 12), "a flat image is unchanged");
}

/* A larger image takes the same path as the fixtures; check it against what the fixtures
 * pin down: pixels away from every edge are unchanged, and the edge map is 0 / 255. */
static void test_large_image_consistent(void) {
    enum { W = 301, H = 203 };
    uint8_t *in = malloc(W * H * 3), *out = malloc(W * H * 3), *e = malloc(W * H);
    if (!in || !out || !e) {
        CHECK(0, "out of memory");
        free(in), free(out), free(e);
        return;
    }
    uint32_t r = 12345;
    for (int i = 0; i < W * H * 3; i++) {
        int x = i / 3 % W, y = i / 3 / W;
        r = r * 1103515245u + 12345u;
        /* blocks with noise: long edges between them and flat insides */
        in[i] = (uint8_t)(((x / 37 + y / 23) % 3) * 100 + (r >> 29));
    }
    CHECK(cg_edge_smooth(out, in, W, H, e) == CG_OK, "%s", cg_last_error());
    long edges = 0, changed_far = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            edges += e[y * W + x] == 255;
            CHECK(e[y * W + x] == 0 || e[y * W + x] == 255, "edge value %d", e[y * W + x]);
            int near = 0;
            for (int dy = -2; dy <= 2; dy++)
                for (int dx = -2; dx <= 2; dx++) {
                    int yy = y + dy, xx = x + dx;
                    if (yy >= 0 && yy < H && xx >= 0 && xx < W) near |= e[yy * W + xx];
                }
            if (!near) changed_far += memcmp(out + (y * W + x) * 3, in + (y * W + x) * 3, 3) != 0;
        }
    CHECK(edges > 1000, "only %ld edge pixels", edges);
    CHECK(changed_far == 0, "%ld pixels away from edges changed", changed_far);
    free(in);
    free(out);
    free(e);
}

/* `same A B`: "same WxH", or "differ: N of M pixels" / a load error, on stdout. */
static int same_pixels(const char *a, const char *b) {
    cg_image x = {0}, y = {0};
    if (cg_image_load(&x, a, 0) != CG_OK || cg_image_load(&y, b, 0) != CG_OK) {
        printf("%s\n", cg_last_error());
        cg_image_free(&x);
        return 2;
    }
    int r = 1;
    if (x.w != y.w || x.h != y.h) {
        printf("differ: %dx%d vs %dx%d\n", x.w, x.h, y.w, y.h);
    } else {
        size_t n = (size_t)x.w * x.h, bad = 0;
        for (size_t i = 0; i < n; i++) bad += memcmp(x.rgb + 3 * i, y.rgb + 3 * i, 3) != 0;
        if (bad) printf("differ: %zu of %zu pixels\n", bad, n);
        else printf("same %dx%d\n", x.w, x.h);
        r = bad != 0;
    }
    cg_image_free(&x);
    cg_image_free(&y);
    return r;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "same")) return same_pixels(argv[2], argv[3]);
    RUN(test_fixtures_match_opencv);
    RUN(test_gray_formula);
    RUN(test_canny_thresholds_strict);
    RUN(test_bad_arguments);
    RUN(test_large_image_consistent);
    return TEST_SUMMARY("test_smooth");
}
