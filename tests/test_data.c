/* test_data.c: the training data pipeline (src/train/data.c): listing and its errors,
 * batch shapes and values, determinism across seeds, threads and resumption, one pass over
 * the files per epoch, the statistics of crops and flips, bad and small files reported
 * once, and closing while the workers are busy. Also times one thread preparing batches
 * of 4 at 256x256 from ../shared/data/photos/small_train_set when it is there. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "io/image.h"
#include "test.h"
#include "train/data.h"

static char root[256];

static void path_in(char *out, size_t n, const char *dir, const char *name) {
    snprintf(out, n, "%s/%s/%s", root, dir, name);
}

static void make_subdir(const char *dir) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", root, dir);
    CHECK(cg_mkdir_p(p) == CG_OK, "%s", cg_last_error());
}

static void save_flat(const char *dir, const char *name, int w, int h, int r, int g, int b) {
    cg_image img = {.w = w, .h = h, .rgb = malloc((size_t)w * h * 3)};
    for (int i = 0; i < w * h; i++)
        img.rgb[3 * i] = (uint8_t)r, img.rgb[3 * i + 1] = (uint8_t)g, img.rgb[3 * i + 2] = (uint8_t)b;
    char p[512];
    path_in(p, sizeof p, dir, name);
    CHECK(cg_image_save(&img, p, CG_FMT_UNKNOWN) == CG_OK, "%s", cg_last_error());
    cg_image_free(&img);
}

/* A textured image, so that different crops give different batches. */
static void save_texture(const char *dir, const char *name, int w, int h, int salt) {
    cg_image img = {.w = w, .h = h, .rgb = malloc((size_t)w * h * 3)};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = img.rgb + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(x * 255 / w), p[1] = (uint8_t)(y * 255 / h), p[2] = (uint8_t)((x * y + salt * 37) & 255);
        }
    char p[512];
    path_in(p, sizeof p, dir, name);
    CHECK(cg_image_save(&img, p, CG_FMT_UNKNOWN) == CG_OK, "%s", cg_last_error());
    cg_image_free(&img);
}

static void save_bytes(const char *dir, const char *name, const char *bytes) {
    char p[512];
    path_in(p, sizeof p, dir, name);
    FILE *f = fopen(p, "wb");
    CHECK(f != NULL, "cannot write %s", p);
    if (!f) return;
    fputs(bytes, f);
    fclose(f);
}

static const char *dir_of(const char *dir) {
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", root, dir);
    return p;
}

/* Collects warnings, and notes whether they all came on the calling thread. */
typedef struct {
    int n;
    char msg[64][256];
    pthread_t caller;
    int other_thread;
} warnings;

static void collect(void *user, const char *msg) {
    warnings *w = user;
    if (!pthread_equal(pthread_self(), w->caller)) w->other_thread = 1;
    if (w->n < 64) snprintf(w->msg[w->n], sizeof w->msg[0], "%s", msg);
    w->n++;
}

static int count_containing(const warnings *w, const char *s) {
    int c = 0;
    for (int i = 0; i < w->n && i < 64; i++) c += strstr(w->msg[i], s) != NULL;
    return c;
}

/* The mixed folder: formats, a non-square image, one smaller than a 32-pixel crop, a
 * corrupt file, and things that are not to be listed. */
#define MIXED "mixed"
static void make_mixed(void) {
    make_subdir(MIXED);
    save_texture(MIXED, "a_big.png", 64, 48, 1);
    save_texture(MIXED, "b_wide.jpg", 80, 40, 2);
    save_texture(MIXED, "c_small.webp", 20, 24, 3);
    save_bytes(MIXED, "d_corrupt.jpg", "this is not a JPEG file at all");
    save_texture(MIXED, "E_upper.PNG", 48, 48, 4);
    save_texture(MIXED, ".hidden.png", 48, 48, 5);
    save_bytes(MIXED, "notes.txt", "not an image");
    make_subdir(MIXED "/sub");
    save_texture(MIXED "/sub", "nested.png", 48, 48, 6);
}

static float *alloc_batch(int batch, int size) {
    return malloc(sizeof(float) * (size_t)batch * 3 * size * size);
}

static void test_errors(void) {
    cg_loader *l = (cg_loader *)&l;
    char p[512];
    snprintf(p, sizeof p, "%s/missing", root);
    CHECK(cg_loader_open(&l, p, 2, 32, 1, 0, 1, 1) == CG_ERR_IO, "missing folder");
    CHECK(l == NULL, "out cleared");
    CHECK(strstr(cg_last_error(), p) && strstr(cg_last_error(), "no such folder"), "%s", cg_last_error());

    make_subdir("empty");
    CHECK(cg_loader_open(&l, dir_of("empty"), 2, 32, 1, 0, 1, 1) == CG_ERR_ARG, "empty folder");
    CHECK(strstr(cg_last_error(), dir_of("empty")) &&
              strstr(cg_last_error(), "no images (.jpg .jpeg .png .webp)"), "%s", cg_last_error());

    make_subdir("textonly");
    save_bytes("textonly", "readme.txt", "x");
    save_flat("textonly", ".hidden.png", 8, 8, 1, 2, 3);
    CHECK(cg_loader_open(&l, dir_of("textonly"), 2, 32, 1, 0, 1, 1) == CG_ERR_ARG, "no images");
    CHECK(strstr(cg_last_error(), "no images") && strstr(cg_last_error(), "1 other file is there"), "%s",
          cg_last_error());

    save_bytes("textonly", "file.png", "x");
    snprintf(p, sizeof p, "%s/textonly/file.png", root);
    CHECK(cg_loader_open(&l, p, 2, 32, 1, 0, 1, 1) == CG_ERR_IO, "a file, not a folder");
    CHECK(strstr(cg_last_error(), "not a folder"), "%s", cg_last_error());

    CHECK(cg_loader_open(&l, dir_of(MIXED), 0, 32, 1, 0, 1, 1) == CG_ERR_ARG, "batch 0");
    CHECK(cg_loader_open(&l, dir_of(MIXED), 2, 0, 1, 0, 1, 1) == CG_ERR_ARG, "size 0");
    CHECK(cg_loader_open(&l, dir_of(MIXED), 2, 32, 1, 0, 0, 1) == CG_ERR_ARG, "threads 0");
    CHECK(cg_loader_open(&l, dir_of(MIXED), 2, 32, 1, 0, 1, 0) == CG_ERR_ARG, "prefetch 0");
    CHECK(cg_loader_open(NULL, dir_of(MIXED), 2, 32, 1, 0, 1, 1) == CG_ERR_ARG, "null out");
    CHECK(cg_loader_open(&l, NULL, 2, 32, 1, 0, 1, 1) == CG_ERR_ARG, "null dir");

    CHECK(cg_loader_open(&l, dir_of(MIXED), 2, 32, 1, 0, 1, 1) == CG_OK, "%s", cg_last_error());
    float *b = alloc_batch(2, 32);
    CHECK(cg_loader_next(l, -1, b, NULL) == CG_ERR_ARG, "negative k");
    CHECK(cg_loader_next(l, 0, NULL, NULL) == CG_ERR_ARG, "null dst");
    CHECK(cg_loader_next(l, 0, b, NULL) == CG_OK, "%s", cg_last_error());
    cg_loader_close(l);
    cg_loader_close(NULL);
    free(b);
}

static void test_listing(void) {
    cg_loader *l;
    CHECK(cg_loader_open(&l, dir_of(MIXED), 2, 32, 1, 0, 1, 1) == CG_OK, "%s", cg_last_error());
    if (!l) return;
    /* a_big.png b_wide.jpg c_small.webp d_corrupt.jpg E_upper.PNG: not the hidden file, the
     * text or the subfolder's image */
    CHECK(cg_loader_count(l) == 5, "count %d", cg_loader_count(l));
    cg_loader_close(l);
}

static void test_shapes_and_range(void) {
    const int B = 3, S = 32;
    cg_loader *l;
    CHECK(cg_loader_open(&l, dir_of(MIXED), B, S, 42, 0, 2, 2) == CG_OK, "%s", cg_last_error());
    if (!l) return;
    size_t n = (size_t)B * 3 * S * S;
    float *b = alloc_batch(B + 1, S); /* one more image: a guard that must stay untouched */
    for (size_t i = n; i < n + (size_t)3 * S * S; i++) b[i] = 7.0f;
    int bad_range = 0, guard = 0, flat = 0;
    for (long k = 0; k < 10; k++) {
        double waited = -1;
        CHECK(cg_loader_next(l, k, b, &waited) == CG_OK, "%s", cg_last_error());
        CHECK(waited >= 0 && isfinite(waited), "waited %g", waited);
        for (size_t i = 0; i < n; i++) bad_range += !(b[i] >= -1.0f && b[i] <= 1.0f);
        for (size_t i = n; i < n + (size_t)3 * S * S; i++) guard += b[i] != 7.0f;
        for (int s = 0; s < B; s++) { /* every image is textured, so no channel is constant */
            const float *c = b + (size_t)s * 3 * S * S;
            float lo = c[0], hi = c[0];
            for (int i = 0; i < S * S; i++) lo = fminf(lo, c[i]), hi = fmaxf(hi, c[i]);
            flat += hi - lo < 0.05f;
        }
    }
    CHECK(bad_range == 0, "%d values outside [-1, 1]", bad_range);
    CHECK(guard == 0, "wrote past the batch");
    CHECK(flat == 0, "%d images have a constant B channel", flat);
    cg_loader_close(l);
    free(b);
}

/* Fills out[k] with batches first..first+count-1 of a fresh loader. */
static void run_loader(float **out, long first, int count, int B, int S, uint64_t seed, int stream, int threads,
                       int prefetch) {
    cg_loader *l;
    CHECK(cg_loader_open(&l, dir_of(MIXED), B, S, seed, stream, threads, prefetch) == CG_OK, "%s",
          cg_last_error());
    for (int i = 0; i < count; i++) {
        out[i] = alloc_batch(B, S);
        if (l) CHECK(cg_loader_next(l, first + i, out[i], NULL) == CG_OK, "%s", cg_last_error());
    }
    cg_loader_close(l);
}

static int same_batches(float **a, float **b, int count, int B, int S) {
    int same = 1;
    for (int i = 0; i < count; i++)
        same &= memcmp(a[i], b[i], sizeof(float) * (size_t)B * 3 * S * S) == 0;
    return same;
}

static void free_batches(float **a, int count) {
    for (int i = 0; i < count; i++) free(a[i]);
}

static void test_determinism(void) {
    enum { N = 12, B = 3, S = 32 };
    float *a[N], *b[N], *c[N], *d[N], *e[N];
    run_loader(a, 0, N, B, S, 7, 0, 1, 1);
    run_loader(b, 0, N, B, S, 7, 0, 4, 3);
    run_loader(c, 0, N, B, S, 7, 0, 3, 8);
    run_loader(d, 0, N, B, S, 8, 0, 2, 2);
    run_loader(e, 0, N, B, S, 7, 1, 2, 2);
    CHECK(same_batches(a, b, N, B, S), "1 and 4 threads differ");
    CHECK(same_batches(a, c, N, B, S), "1 and 3 threads differ");
    int differ_seed = 0, differ_stream = 0;
    for (int i = 0; i < N; i++) {
        differ_seed += !same_batches(a + i, d + i, 1, B, S);
        differ_stream += !same_batches(a + i, e + i, 1, B, S);
    }
    CHECK(differ_seed == N, "seeds 7 and 8 give %d equal batches of %d", N - differ_seed, N);
    CHECK(differ_stream == N, "streams 0 and 1 give %d equal batches of %d", N - differ_stream, N);
    free_batches(a, N), free_batches(b, N), free_batches(c, N), free_batches(d, N), free_batches(e, N);
}

/* A run resumed at batch 7 sees what an unbroken run saw at its 8th call and after. */
static void test_resume(void) {
    enum { N = 12, B = 3, S = 32 };
    float *a[N], *r[5];
    run_loader(a, 0, N, B, S, 99, 0, 2, 4);
    run_loader(r, 7, 5, B, S, 99, 0, 3, 2);
    CHECK(same_batches(a + 7, r, 5, B, S), "resumed at 7: batches differ");
    free_batches(r, 5);

    /* any order is answered correctly, prefetched or not: 2, then 9 (a jump), 3 (back) */
    cg_loader *l;
    CHECK(cg_loader_open(&l, dir_of(MIXED), B, S, 99, 0, 2, 3) == CG_OK, "%s", cg_last_error());
    float *x = alloc_batch(B, S);
    long order[] = {2, 9, 3, 4, 11};
    for (int i = 0; l && i < 5; i++) {
        CHECK(cg_loader_next(l, order[i], x, NULL) == CG_OK, "%s", cg_last_error());
        CHECK(same_batches(a + order[i], &x, 1, B, S), "batch %ld asked out of order differs", order[i]);
    }
    cg_loader_close(l);
    free(x);
    free_batches(a, N);
}

/* Data-parallel slices: processes r = 0..2 of batch 2, each from position P + 2 r with
 * stride 6, together take what one loader of batch 6 takes from position P (here batch 3
 * of batch 6: P = 18, a resumed run's position), in order, image for image; bad files
 * included (MIXED has them: a bad position takes the next good file in every slice). */
static void test_slices(void) {
    enum { N = 4, B = 2, K = 3, S = 32 };
    float *whole[N + 3];
    run_loader(whole, 0, N + 3, K * B, S, 77, 0, 2, 2);
    const size_t img = (size_t)3 * S * S;
    for (int r = 0; r < K; r++) {
        cg_loader *l;
        CHECK(cg_loader_open(&l, dir_of(MIXED), B, S, 77, 0, 2, 2) == CG_OK, "%s", cg_last_error());
        if (!l) break;
        CHECK(cg_loader_set_slice(l, 3 * K * B + (int64_t)r * B, K * B) == CG_OK, "%s", cg_last_error());
        float *x = alloc_batch(B, S);
        for (long k = 0; k < N; k++) {
            CHECK(cg_loader_next(l, k, x, NULL) == CG_OK, "%s", cg_last_error());
            CHECK(memcmp(x, whole[3 + k] + (size_t)r * B * img, (size_t)B * img * sizeof(float)) == 0,
                  "process %d's slice of global batch %ld differs", r, 3 + k);
        }
        CHECK(cg_loader_set_slice(l, 0, B - 1) == CG_ERR_ARG, "a stride below the batch was taken");
        CHECK(cg_loader_set_slice(l, -1, K * B) == CG_ERR_ARG, "a negative position was taken");
        free(x);
        cg_loader_close(l);
    }
    free_batches(whole, N + 3);
}

static void test_bad_and_small_reported_once(void) {
    const int B = 3, S = 32;
    cg_loader *l;
    CHECK(cg_loader_open(&l, dir_of(MIXED), B, S, 5, 0, 3, 4) == CG_OK, "%s", cg_last_error());
    if (!l) return;
    warnings w = {0};
    w.caller = pthread_self();
    cg_loader_set_warn(l, collect, &w);
    float *b = alloc_batch(B, S);
    for (long k = 0; k < 20; k++) /* 60 positions: 12 epochs of 5 files */
        CHECK(cg_loader_next(l, k, b, NULL) == CG_OK, "%s", cg_last_error());
    CHECK(w.n == 2, "%d warnings", w.n);
    for (int i = 0; i < w.n && i < 64; i++) printf("     warning: %s\n", w.msg[i]);
    CHECK(count_containing(&w, "/d_corrupt.jpg: skipped: ") == 1, "corrupt file not reported once");
    CHECK(count_containing(&w, "/c_small.webp: 20x24 is smaller than the 32-pixel crop; upscaled") == 1,
          "small file not reported once");
    CHECK(!w.other_thread, "a warning was delivered on another thread");
    CHECK(cg_loader_bad_count(l) == 1, "bad count %d", cg_loader_bad_count(l));
    const char *name = cg_loader_bad_name(l, 0), *reason = cg_loader_bad_reason(l, 0);
    CHECK(name && strstr(name, "d_corrupt.jpg"), "bad name %s", name ? name : "(null)");
    CHECK(reason && *reason && !strstr(reason, root), "bad reason %s", reason ? reason : "(null)");
    CHECK(cg_loader_bad_name(l, 1) == NULL && cg_loader_bad_reason(l, -1) == NULL, "out of range");
    CHECK(cg_loader_small_count(l) == 1, "small count %d", cg_loader_small_count(l));
    cg_loader_close(l);
    free(b);
}

static void test_all_bad(void) {
    make_subdir("allbad");
    save_bytes("allbad", "a.jpg", "garbage");
    save_bytes("allbad", "b.png", "");
    save_bytes("allbad", "c.webp", "RIFF....WEBPVP8 nonsense");
    cg_loader *l;
    CHECK(cg_loader_open(&l, dir_of("allbad"), 2, 16, 1, 0, 2, 2) == CG_OK, "%s", cg_last_error());
    if (!l) return;
    warnings w = {0};
    w.caller = pthread_self();
    cg_loader_set_warn(l, collect, &w);
    float *b = alloc_batch(2, 16);
    CHECK(cg_loader_next(l, 0, b, NULL) == CG_ERR_FORMAT, "no failure");
    CHECK(strstr(cg_last_error(), "none of the 3 images could be decoded"), "%s", cg_last_error());
    printf("     error: %s\n", cg_last_error());
    CHECK(cg_loader_next(l, 0, b, NULL) == CG_ERR_FORMAT, "a retry does not fail");
    CHECK(cg_loader_next(l, 1, b, NULL) == CG_ERR_FORMAT, "the next batch does not fail");
    CHECK(w.n == 3 && count_containing(&w, ": skipped: ") == 3, "%d warnings", w.n);
    CHECK(cg_loader_bad_count(l) == 3, "bad count %d", cg_loader_bad_count(l));
    cg_loader_close(l);
    free(b);
}

/* Flat colours identify the images: a crop, flip and resize of a flat image stays flat. */
#define FLAT "flat"
enum { NFLAT = 7 };
static const int flat_rgb[NFLAT + 1][3] = {{250, 10, 10}, {10, 250, 10}, {10, 10, 250}, {250, 250, 10},
                                           {10, 250, 250}, {250, 10, 250}, {128, 128, 128}, {40, 90, 200}};

static void make_flat(void) {
    make_subdir(FLAT);
    static const char *names[NFLAT] = {"f0.png", "f1.jpg", "f2.webp", "f3.png", "f4.png", "f5.jpeg", "f6.png"};
    static const int sizes[NFLAT][2] = {{40, 40}, {64, 36}, {30, 50}, {20, 20}, {100, 60}, {33, 33}, {36, 90}};
    for (int i = 0; i < NFLAT; i++)
        save_flat(FLAT, names[i], sizes[i][0], sizes[i][1], flat_rgb[i][0], flat_rgb[i][1], flat_rgb[i][2]);
}

/* The colour index of image s of a batch ([3][S][S], BGR), or -1 if it is not one flat
 * colour of the table (within JPEG's and WebP's error). */
static int identify(const float *img, int S, int ncolours) {
    int best = -1;
    for (int c = 0; c < ncolours; c++) {
        int ok = 1;
        for (int ch = 0; ch < 3 && ok; ch++) {
            float want = (float)(flat_rgb[c][2 - ch] / 127.5 - 1.0); /* BGR planes */
            const float *p = img + (size_t)ch * S * S;
            for (int i = 0; i < S * S && ok; i++) ok = fabsf(p[i] - want) <= 6.0f / 127.5f;
        }
        if (ok) best = c;
    }
    return best;
}

static void test_epochs(void) {
    const int B = 3, S = 24, E = 6, K = NFLAT * E / B; /* 14 batches: 6 epochs exactly */
    cg_loader *l;
    CHECK(cg_loader_open(&l, dir_of(FLAT), B, S, 1234, 0, 2, 3) == CG_OK, "%s", cg_last_error());
    if (!l) return;
    int ids[NFLAT * 6];
    float *b = alloc_batch(B, S);
    for (long k = 0; k < K; k++) {
        CHECK(cg_loader_next(l, k, b, NULL) == CG_OK, "%s", cg_last_error());
        for (int s = 0; s < B; s++) ids[k * B + s] = identify(b + (size_t)s * 3 * S * S, S, NFLAT);
    }
    int unknown = 0, orders_differ = 0;
    for (int e = 0; e < E; e++) {
        int seen[NFLAT] = {0};
        for (int i = 0; i < NFLAT; i++) {
            int id = ids[e * NFLAT + i];
            if (id < 0) unknown++;
            else seen[id]++;
        }
        for (int c = 0; c < NFLAT; c++) CHECK(seen[c] == 1, "epoch %d: image %d seen %d times", e, c, seen[c]);
        if (e > 0) orders_differ += memcmp(ids + e * NFLAT, ids + (e - 1) * NFLAT, sizeof(int) * NFLAT) != 0;
    }
    CHECK(unknown == 0, "%d images not identified (not flat, or wrong colour)", unknown);
    CHECK(orders_differ >= E - 2, "epochs repeat the same order");
    CHECK(cg_loader_small_count(l) == 1, "small count %d", cg_loader_small_count(l)); /* f3, 20x20 */
    cg_loader_close(l);

    /* With a corrupt file among them, its positions take the next position's file: every
     * epoch still holds every good image, and its one duplicate is that substitution. */
    save_bytes(FLAT, "f7_corrupt.png", "\x89PNG\r\n\x1a\n truncated");
    CHECK(cg_loader_open(&l, dir_of(FLAT), B, S, 1234, 0, 3, 2) == CG_OK, "%s", cg_last_error());
    if (!l) {
        free(b);
        return;
    }
    const int N8 = NFLAT + 1, K8 = N8 * E / B; /* 16 batches */
    int ids8[8 * 6];
    for (long k = 0; k < K8; k++) {
        CHECK(cg_loader_next(l, k, b, NULL) == CG_OK, "%s", cg_last_error());
        for (int s = 0; s < B; s++) ids8[k * B + s] = identify(b + (size_t)s * 3 * S * S, S, NFLAT);
    }
    for (int e = 0; e < E; e++) {
        int seen[NFLAT] = {0}, dup = -1;
        for (int i = 0; i < N8; i++) {
            int id = ids8[e * N8 + i];
            CHECK(id >= 0, "epoch %d position %d not identified", e, i);
            if (id < 0) continue;
            if (++seen[id] == 2) dup = id;
        }
        for (int c = 0; c < NFLAT; c++) CHECK(seen[c] >= 1, "epoch %d: image %d missing", e, c);
        /* the duplicate sits at two adjacent positions, or the epoch's last position took
         * the next epoch's first image */
        int adjacent = 0;
        for (int i = 0; i + 1 < N8; i++) adjacent |= ids8[e * N8 + i] == dup && ids8[e * N8 + i + 1] == dup;
        int crossing = e + 1 < E && ids8[e * N8 + N8 - 1] == ids8[(e + 1) * N8];
        CHECK(dup >= 0 && (adjacent || crossing || e + 1 == E), "epoch %d: the substitution is not the next image", e);
    }
    CHECK(cg_loader_bad_count(l) == 1, "bad count %d", cg_loader_bad_count(l));
    cg_loader_close(l);
    free(b);
    char p[512];
    path_in(p, sizeof p, FLAT, "f7_corrupt.png");
    remove(p);
}

/* A 256x256 ramp (R = x, G = y) shows each crop's scale, position and flip: on the
 * resized crop R rises by cw/S per output pixel (falls, when flipped), G by ch/S. */
static void fit_line(const float *v, int n, int stride, int lo, int hi, double *slope, double *mid) {
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int m = 0;
    for (int i = lo; i < hi; i++, m++) {
        double y = (v[(size_t)i * stride] + 1.0) * 127.5;
        sx += i, sy += y, sxx += (double)i * i, sxy += i * y;
    }
    *slope = (m * sxy - sx * sy) / (m * sxx - sx * sx);
    *mid = sy / m + *slope * ((n - 1) / 2.0 - sx / m); /* the line's value at the centre */
}

static void test_crop_statistics(void) {
    make_subdir("ramp");
    cg_image img = {.w = 256, .h = 256, .rgb = malloc(256 * 256 * 3)};
    for (int y = 0; y < 256; y++)
        for (int x = 0; x < 256; x++) {
            uint8_t *p = img.rgb + ((size_t)y * 256 + x) * 3;
            p[0] = (uint8_t)x, p[1] = (uint8_t)y, p[2] = 128;
        }
    char path[512];
    path_in(path, sizeof path, "ramp", "ramp.png");
    CHECK(cg_image_save(&img, path, CG_FMT_PNG) == CG_OK, "%s", cg_last_error());
    cg_image_free(&img);

    const int B = 8, S = 128, K = 50, D = B * K; /* 400 draws */
    cg_loader *l;
    CHECK(cg_loader_open(&l, dir_of("ramp"), B, S, 2024, 0, 4, 4) == CG_OK, "%s", cg_last_error());
    if (!l) return;
    float *b = alloc_batch(B, S);
    double sw = 0, sh = 0, sww = 0, shh = 0, swh = 0, minw = 9, maxw = 0, minh = 9, maxh = 0;
    double sum_tx = 0, sum_ty = 0, min_tx = 9, max_tx = -9, min_ty = 9, max_ty = -9;
    int flips = 0, out_of_range = 0, vflip = 0, repeats = 0;
    double prev[4] = {0};
    for (long k = 0; k < K; k++) {
        CHECK(cg_loader_next(l, k, b, NULL) == CG_OK, "%s", cg_last_error());
        for (int s = 0; s < B; s++) {
            const float *R = b + ((size_t)s * 3 + 2) * S * S, *G = b + ((size_t)s * 3 + 1) * S * S;
            double ax = 0, cx = 0, ay = 0, cy = 0;
            for (int r = 8; r < S - 8; r += 8) { /* a few rows and columns, averaged */
                double a, c;
                fit_line(R + (size_t)r * S, S, 1, 8, S - 8, &a, &c);
                ax += a, cx += c;
                fit_line(G + r, S, S, 8, S - 8, &a, &c);
                ay += a, cy += c;
            }
            int nr = (S - 16) / 8;
            ax /= nr, cx /= nr, ay /= nr, cy /= nr;
            flips += ax < 0;
            vflip += ay < 0;
            double rw = fabs(ax), rh = fabs(ay); /* crop side / S */
            out_of_range += rw < 0.895 || rw > 1.105 || rh < 0.895 || rh > 1.105;
            sw += rw, sh += rh, sww += rw * rw, shh += rh * rh, swh += rw * rh;
            minw = fmin(minw, rw), maxw = fmax(maxw, rw), minh = fmin(minh, rh), maxh = fmax(maxh, rh);
            /* the crop's left edge over its range of positions: uniform in [0, 1] */
            double tx = (cx + 0.5 - rw * S / 2) / (256 - rw * S), ty = (cy + 0.5 - rh * S / 2) / (256 - rh * S);
            sum_tx += tx, sum_ty += ty;
            /* every position has its own draws: no crop repeats the one before it */
            double cur[4] = {ax, ay, tx, ty};
            int same = 1;
            for (int i = 0; i < 4; i++) same &= fabs(cur[i] - prev[i]) < 1e-9;
            repeats += same;
            memcpy(prev, cur, sizeof cur);
            min_tx = fmin(min_tx, tx), max_tx = fmax(max_tx, tx), min_ty = fmin(min_ty, ty), max_ty = fmax(max_ty, ty);
        }
    }
    double mw = sw / D, mh = sh / D;
    double corr = (swh / D - mw * mh) / sqrt((sww / D - mw * mw) * (shh / D - mh * mh));
    printf("     %d draws: crop width/S %.3f..%.3f mean %.4f, height/S %.3f..%.3f mean %.4f, corr %.3f, "
           "flipped %.3f, left %.3f..%.3f mean %.3f, top %.3f..%.3f mean %.3f\n",
           D, minw, maxw, mw, minh, maxh, mh, corr, (double)flips / D, min_tx, max_tx, sum_tx / D, min_ty, max_ty,
           sum_ty / D);
    /* Bounds: a uniform 0.9..1.1 has mean 1, sd 0.058; over 400 draws the mean's sd is
     * 0.003, the correlation's 0.05 and the flip fraction's 0.025: 4 sd and more. */
    CHECK(out_of_range == 0, "%d crops outside 0.9..1.1", out_of_range);
    CHECK(repeats == 0, "%d crops repeat the previous position's", repeats);
    CHECK(fabs(mw - 1) < 0.015 && fabs(mh - 1) < 0.015, "mean scale %g %g", mw, mh);
    CHECK(minw < 0.92 && maxw > 1.08 && minh < 0.92 && maxh > 1.08, "scales do not span 0.9..1.1");
    CHECK(fabs(corr) < 0.2, "width and height correlate: %g", corr);
    CHECK(fabs((double)flips / D - 0.5) < 0.1, "flipped %d of %d", flips, D);
    CHECK(vflip == 0, "%d crops upside down", vflip);
    CHECK(fabs(sum_tx / D - 0.5) < 0.07 && fabs(sum_ty / D - 0.5) < 0.07, "positions not centred");
    CHECK(min_tx > -0.03 && max_tx < 1.03 && min_ty > -0.03 && max_ty < 1.03, "crops outside the image");
    CHECK(min_tx < 0.1 && max_tx > 0.9 && min_ty < 0.1 && max_ty > 0.9, "positions do not span the image");
    cg_loader_close(l);
    free(b);
}

/* Closing with workers busy (never asked, asked once, asked far ahead) is clean; run under
 * the sanitizers (make asan) this also checks for leaks and races. */
static void test_close_while_busy(void) {
    make_subdir("busy");
    for (int i = 0; i < 6; i++) {
        char name[32];
        snprintf(name, sizeof name, "img%d.png", i);
        save_texture("busy", name, 300 + 40 * i, 260, i);
    }
    float *b = alloc_batch(4, 64);
    for (int round = 0; round < 12; round++) {
        cg_loader *l;
        CHECK(cg_loader_open(&l, dir_of("busy"), 4, 64, (uint64_t)round, 0, 4, 8) == CG_OK, "%s", cg_last_error());
        if (!l) continue;
        if (round % 3 >= 1) CHECK(cg_loader_next(l, 0, b, NULL) == CG_OK, "%s", cg_last_error());
        if (round % 3 == 2) CHECK(cg_loader_next(l, 40, b, NULL) == CG_OK, "%s", cg_last_error());
        cg_loader_close(l);
    }
    free(b);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static void test_timing(void) {
    const char *dir = "../shared/data/photos/small_train_set";
    if (access(dir, R_OK) != 0) {
        printf("     skipped: %s is not there\n", dir);
        return;
    }
    const int B = 4, S = 256, K = 20;
    float *b = alloc_batch(B, S);
    for (int threads = 1; threads <= 2; threads++) {
        cg_loader *l;
        CHECK(cg_loader_open(&l, dir, B, S, 1, 0, threads, 1) == CG_OK, "%s", cg_last_error());
        if (!l) break;
        CHECK(cg_loader_next(l, 0, b, NULL) == CG_OK, "%s", cg_last_error()); /* start-up */
        double t0 = now_s(), waited = 0;
        for (long k = 1; k <= K; k++) {
            double w;
            CHECK(cg_loader_next(l, k, b, &w) == CG_OK, "%s", cg_last_error());
            waited += w;
        }
        double t = now_s() - t0;
        printf("     batch of %d at %dx%d from %d photos, %d thread%s: %.1f ms a batch (%.1f ms of it waiting)\n",
               B, S, S, cg_loader_count(l), threads, threads == 1 ? "" : "s", 1000 * t / K, 1000 * waited / K);
        cg_loader_close(l);
    }
    free(b);
}

int main(void) {
    if (test_make_dir(root, sizeof root, "test_data") != 0) return 1;
    make_mixed();
    make_flat();
    RUN(test_errors);
    RUN(test_listing);
    RUN(test_shapes_and_range);
    RUN(test_determinism);
    RUN(test_resume);
    RUN(test_slices);
    RUN(test_bad_and_small_reported_once);
    RUN(test_all_bad);
    RUN(test_epochs);
    RUN(test_crop_statistics);
    RUN(test_close_while_busy);
    RUN(test_timing);
    test_remove_dir(root);
    return TEST_SUMMARY("test_data");
}
