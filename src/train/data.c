/* data.c: the training data pipeline (data.h): listing a folder of images, the seeded
 * per-epoch shuffles, random crops with scale jitter and flips, and the worker threads
 * that prepare batches ahead of the trainer in a ring of prefetch slots.
 *
 * Threads. The unit of work is one image, i.e. one stream position p, so that several
 * workers share the batch the trainer is waiting for (a batch of 4 on 4 threads is ready
 * in about one image's time) instead of each taking a whole batch. Positions are claimed
 * in order under the loader's mutex; batch j = p / batch fills slot j % nslots, and a
 * worker may start batch j only once j < want + nslots (the consumer has taken batch
 * j - nslots out of that slot). Each image is written straight into its place in the slot,
 * outside the lock. When the consumer asks for another batch than the one expected (a
 * resumed run, or a retry after an error), the generation counter is bumped: what was
 * prefetched is dropped, and a slot that workers are still writing into stays theirs
 * until the last of them sees that its work is stale and frees it. */
#include "train/data.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "io/image.h"
#include "status.h"

/* ---- deterministic random numbers ------------------------------------------------- */

static uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The two kinds of hash(seed, stream, i) (an epoch's shuffle, a position's draws) must
 * never collide, so the kind goes into the key with the stream. */
enum { KEY_EPOCH = 0, KEY_POSITION = 1 };

static uint64_t hash_key(uint64_t seed, int stream, int kind, uint64_t i) {
    uint64_t s = ((uint64_t)(uint32_t)stream << 1) | (uint64_t)kind;
    return mix64(mix64(mix64(seed) ^ s) ^ i);
}

/* splitmix64 as a sequence generator seeded by one hash. */
typedef struct {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r) {
    r->s += 0x9E3779B97F4A7C15ull;
    uint64_t z = r->s;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_u01(rng *r) { return (double)(rng_next(r) >> 11) * 0x1p-53; } /* [0, 1) */

static int64_t rng_below(rng *r, int64_t m) { /* [0, m), m >= 1 */
    int64_t v = (int64_t)(rng_u01(r) * (double)m);
    return v < m ? v : m - 1;
}

/* ---- the loader -------------------------------------------------------------------- */

enum { FILE_UNKNOWN = 0, FILE_GOOD = 1, FILE_BAD = 2, FILE_STATE = 3, FILE_SMALL_SEEN = 4 };

typedef struct {
    long k;       /* batch held or being filled; -1 when free */
    unsigned gen; /* the loader's generation when it was claimed */
    int done;     /* images finished (well or not) */
    int writers;  /* workers writing into it now */
    cg_status err;
    char msg[512];
    float *buf; /* [batch][3][size][size] */
} slot;

typedef struct {
    int64_t epoch; /* -1: empty */
    int *perm;
} perm_cache;

typedef struct {
    struct cg_loader *l;
    pthread_t th;
    perm_cache pc[2]; /* a batch spans at most two epochs in the usual case */
    int pc_next;
    uint8_t *crop, *out;
    size_t crop_cap;
} worker;

struct cg_loader {
    char *dir;
    char **paths; /* DIR/NAME in name order */
    int n;
    int batch, size, nthreads, nslots;
    uint64_t seed;
    int stream;
    int64_t first;    /* cg_loader_set_slice: batch k's image i is stream position */
    int stride;       /* first + k * stride + i */
    float lut[256]; /* 8-bit value -> [-1, 1] */

    pthread_mutex_t mu; /* the ring: slots, want, next_pos, gen */
    pthread_cond_t work_cv, ready_cv;
    slot *slots;
    long want;        /* the batch the consumer is expected to ask for next */
    int64_t next_pos; /* the next stream position to claim */
    unsigned gen;
    atomic_int stop;
    worker *workers;
    int started;

    pthread_mutex_t info_mu; /* what is known about files, and the warnings */
    uint8_t *file;           /* FILE_* state per file */
    struct bad_file {
        const char *path; /* one of paths[] */
        char *reason;     /* NULL if it could not be stored */
    } *bad;
    int nbad, bad_cap, nsmall;
    char **msgs;
    int nmsgs, msg_cap;
    cg_loader_warn_fn warn;
    void *warn_user;
};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    int slash = a > 0 && dir[a - 1] != '/';
    char *p = malloc(a + (size_t)slash + b + 1);
    if (!p) return NULL;
    memcpy(p, dir, a);
    if (slash) p[a] = '/';
    memcpy(p + a + slash, name, b + 1);
    return p;
}

/* Fills l->paths with the folder's images. */
static cg_status list_images(cg_loader *l) {
    DIR *d = opendir(l->dir);
    if (!d) {
        int e = errno;
        if (e == ENOENT) return cg_fail(CG_ERR_IO, "%s: no such folder", l->dir);
        if (e == ENOTDIR) return cg_fail(CG_ERR_IO, "%s: not a folder", l->dir);
        return cg_fail(CG_ERR_IO, "%s: cannot read: %s", l->dir, strerror(e));
    }
    int cap = 0, others = 0;
    cg_status s = CG_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue; /* hidden, and a killed writer's temporaries */
        char *p = path_join(l->dir, e->d_name);
        if (!p) {
            s = cg_fail(CG_ERR_NOMEM, "%s: out of memory listing the folder", l->dir);
            break;
        }
        struct stat st;
        if (stat(p, &st) != 0 || !S_ISREG(st.st_mode)) { /* subfolders, broken links */
            free(p);
            continue;
        }
        if (cg_format_from_path(e->d_name) == CG_FMT_UNKNOWN) {
            others++;
            free(p);
            continue;
        }
        if (l->n == cap) {
            int nc = cap ? cap * 2 : 64;
            char **np = realloc(l->paths, sizeof *np * (size_t)nc);
            if (!np || l->n == INT_MAX / 2) {
                free(p);
                s = cg_fail(CG_ERR_NOMEM, "%s: out of memory listing the folder", l->dir);
                break;
            }
            l->paths = np, cap = nc;
        }
        l->paths[l->n++] = p;
    }
    closedir(d);
    if (s != CG_OK) return s;
    if (l->n == 0) {
        if (others)
            return cg_fail(CG_ERR_ARG, "%s: no images (.jpg .jpeg .png .webp); %d other file%s there",
                           l->dir, others, others == 1 ? " is" : "s are");
        return cg_fail(CG_ERR_ARG, "%s: no images (.jpg .jpeg .png .webp)", l->dir);
    }
    qsort(l->paths, (size_t)l->n, sizeof *l->paths, cmp_str);
    return CG_OK;
}

/* ---- what is known about files (info_mu) ------------------------------------------- */

/* Queues a warning for the consumer's thread; a message that cannot be stored is lost
 * rather than failing a batch over it. Called with info_mu held. */
static void queue_msg(cg_loader *l, char *msg) {
    if (!msg) return;
    if (l->nmsgs == l->msg_cap) {
        int nc = l->msg_cap ? l->msg_cap * 2 : 16;
        char **nm = realloc(l->msgs, sizeof *nm * (size_t)nc);
        if (!nm) {
            free(msg);
            return;
        }
        l->msgs = nm, l->msg_cap = nc;
    }
    l->msgs[l->nmsgs++] = msg;
}

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static char *format_msg(const char *fmt, ...);
static char *format_msg(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *m = malloc((size_t)n + 1);
    if (!m) return NULL;
    va_start(ap, fmt);
    vsnprintf(m, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return m;
}

static void mark_bad(cg_loader *l, int f, const char *err) {
    const char *path = l->paths[f], *reason = err;
    size_t pl = strlen(path);
    /* cg_image_load's messages read "PATH: reason"; the list keeps the two apart */
    if (strncmp(err, path, pl) == 0 && err[pl] == ':' && err[pl + 1] == ' ') reason = err + pl + 2;
    pthread_mutex_lock(&l->info_mu);
    if ((l->file[f] & FILE_STATE) != FILE_BAD) { /* two workers may fail on it at once */
        l->file[f] = (uint8_t)((l->file[f] & ~FILE_STATE) | FILE_BAD);
        if (l->nbad == l->bad_cap) {
            int nc = l->bad_cap ? l->bad_cap * 2 : 8;
            struct bad_file *b = realloc(l->bad, sizeof *b * (size_t)nc);
            if (b) l->bad = b, l->bad_cap = nc;
        }
        if (l->nbad < l->bad_cap) {
            l->bad[l->nbad].path = path;
            l->bad[l->nbad].reason = strdup(reason);
            l->nbad++;
        }
        queue_msg(l, format_msg("%s: skipped: %s", path, reason));
    }
    pthread_mutex_unlock(&l->info_mu);
}

static void mark_good(cg_loader *l, int f, int w, int h) {
    pthread_mutex_lock(&l->info_mu);
    uint8_t st = l->file[f];
    if ((st & FILE_STATE) == FILE_UNKNOWN) st = (uint8_t)(st | FILE_GOOD);
    if ((w < l->size || h < l->size) && !(st & FILE_SMALL_SEEN)) {
        st |= FILE_SMALL_SEEN;
        l->nsmall++;
        queue_msg(l, format_msg("%s: %dx%d is smaller than the %d-pixel crop; upscaled",
                                l->paths[f], w, h, l->size));
    }
    l->file[f] = st;
    pthread_mutex_unlock(&l->info_mu);
}

static int file_state(cg_loader *l, int f) {
    pthread_mutex_lock(&l->info_mu);
    int st = l->file[f] & FILE_STATE;
    pthread_mutex_unlock(&l->info_mu);
    return st;
}

/* ---- one image ------------------------------------------------------------------- */

/* The file at stream position q: element q % n of epoch q / n's shuffle. */
static int file_at(worker *w, int64_t q) {
    cg_loader *l = w->l;
    int64_t epoch = q / l->n;
    int i = (int)(q % l->n);
    for (int c = 0; c < 2; c++)
        if (w->pc[c].epoch == epoch) return w->pc[c].perm[i];
    perm_cache *pc = &w->pc[w->pc_next];
    w->pc_next ^= 1;
    int *p = pc->perm;
    for (int j = 0; j < l->n; j++) p[j] = j;
    rng r = {hash_key(l->seed, l->stream, KEY_EPOCH, (uint64_t)epoch)};
    for (int j = l->n - 1; j > 0; j--) { /* Fisher-Yates */
        int t = (int)rng_below(&r, (int64_t)j + 1), v = p[j];
        p[j] = p[t], p[t] = v;
    }
    pc->epoch = epoch;
    return p[i];
}

/* Crop, flip, resize and convert one decoded image into dst ([3][size][size]) with the
 * random numbers of stream position p (the order is data.h's). */
static cg_status crop_image(worker *w, const cg_image *img, int64_t p, float *dst) {
    cg_loader *l = w->l;
    int size = l->size;
    rng r = {hash_key(l->seed, l->stream, KEY_POSITION, (uint64_t)p)};
    int cw = (int)lround(size * (0.9 + 0.2 * rng_u01(&r)));
    int ch = (int)lround(size * (0.9 + 0.2 * rng_u01(&r)));
    if (cw < 1) cw = 1;
    if (ch < 1) ch = 1;
    if (cw > img->w) cw = img->w;
    if (ch > img->h) ch = img->h;
    int x0 = (int)rng_below(&r, (int64_t)img->w - cw + 1);
    int y0 = (int)rng_below(&r, (int64_t)img->h - ch + 1);
    int flip = rng_u01(&r) < 0.5;

    size_t need = (size_t)cw * ch * 3;
    if (need > w->crop_cap) {
        uint8_t *c = realloc(w->crop, need);
        if (!c) return cg_fail(CG_ERR_NOMEM, "out of memory cropping a training image");
        w->crop = c, w->crop_cap = need;
    }
    /* cg_resize_rgb takes packed pixels, so the crop is copied out (and flipped on the
     * way, which is cheaper than flipping the larger or equal resized image). */
    for (int y = 0; y < ch; y++) {
        const uint8_t *s = img->rgb + ((size_t)(y0 + y) * img->w + x0) * 3;
        uint8_t *d = w->crop + (size_t)y * cw * 3;
        if (!flip) {
            memcpy(d, s, (size_t)cw * 3);
        } else {
            for (int x = 0; x < cw; x++) memcpy(d + (size_t)x * 3, s + (size_t)(cw - 1 - x) * 3, 3);
        }
    }
    cg_resize_rgb(w->out, size, size, w->crop, cw, ch);
    size_t plane = (size_t)size * size;
    const uint8_t *o = w->out;
    for (size_t i = 0; i < plane; i++, o += 3) {
        dst[i] = l->lut[o[2]];             /* B */
        dst[plane + i] = l->lut[o[1]];     /* G */
        dst[2 * plane + i] = l->lut[o[0]]; /* R */
    }
    return CG_OK;
}

/* Prepares stream position p into dst: the first file from p on that decodes. The message
 * of a failure goes into msg (the worker's cg_last_error is not the consumer's). */
static cg_status prepare(worker *w, int64_t p, float *dst, char *msg, size_t msg_n) {
    cg_loader *l = w->l;
    /* Any 2n consecutive positions hold a whole epoch, so every file has been tried (or
     * was known bad) by then and the search ends even when none decodes. */
    for (int64_t q = p; q < p + 2 * (int64_t)l->n; q++) {
        if (atomic_load(&l->stop)) {
            snprintf(msg, msg_n, "%s: the loader is closing", l->dir);
            return CG_ERR_CANCELLED;
        }
        int f = file_at(w, q);
        if (file_state(l, f) == FILE_BAD) continue;
        cg_image img = {0};
        cg_status s = cg_image_load(&img, l->paths[f], CG_LOADER_MAX_PIXELS);
        if (s == CG_ERR_NOMEM) { /* the machine's trouble, not the file's: no skipping */
            snprintf(msg, msg_n, "%s", cg_last_error());
            return s;
        }
        if (s != CG_OK) {
            mark_bad(l, f, cg_last_error());
            continue;
        }
        mark_good(l, f, img.w, img.h);
        s = crop_image(w, &img, p, dst);
        cg_image_free(&img);
        if (s != CG_OK) snprintf(msg, msg_n, "%s", cg_last_error());
        return s;
    }
    pthread_mutex_lock(&l->info_mu);
    if (l->nbad > 0)
        snprintf(msg, msg_n, "%s: none of the %d images could be decoded (%s: %s)", l->dir, l->n,
                 l->bad[0].path, l->bad[0].reason ? l->bad[0].reason : "unknown reason");
    else
        snprintf(msg, msg_n, "%s: none of the %d images could be decoded", l->dir, l->n);
    pthread_mutex_unlock(&l->info_mu);
    return CG_ERR_FORMAT;
}

/* ---- the ring ---------------------------------------------------------------------- */

static void *worker_main(void *arg) {
    worker *w = arg;
    cg_loader *l = w->l;
    size_t plane = (size_t)3 * l->size * l->size;
    char msg[512];
    pthread_mutex_lock(&l->mu);
    while (!atomic_load(&l->stop)) {
        int64_t p = l->next_pos;
        long j = (long)(p / l->batch);
        slot *s = &l->slots[j % l->nslots];
        int mine = s->k == j && s->gen == l->gen;
        if (j >= l->want + l->nslots || !(mine || (s->k < 0 && s->writers == 0))) {
            pthread_cond_wait(&l->work_cv, &l->mu);
            continue;
        }
        if (!mine) s->k = j, s->gen = l->gen, s->done = 0, s->err = CG_OK, s->msg[0] = 0;
        l->next_pos++;
        s->writers++;
        unsigned gen = l->gen;
        pthread_mutex_unlock(&l->mu);

        msg[0] = 0;
        /* p counts this loader's images; the stream position is its slice's */
        const int64_t i = p - (int64_t)j * l->batch, pos = l->first + (int64_t)j * l->stride + i;
        cg_status st = prepare(w, pos, s->buf + (size_t)i * plane, msg, sizeof msg);

        pthread_mutex_lock(&l->mu);
        s->writers--;
        if (gen == l->gen) {
            if (st != CG_OK && s->err == CG_OK) {
                s->err = st;
                snprintf(s->msg, sizeof s->msg, "%s", msg);
            }
            if (++s->done == l->batch) pthread_cond_broadcast(&l->ready_cv);
        } else if (s->writers == 0) { /* stale: the last writer hands the slot back */
            s->k = -1;
            pthread_cond_broadcast(&l->work_cv);
        }
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* Drops what was prefetched and restarts the workers at batch k. Called with mu held. */
static void restart_at(cg_loader *l, long k) {
    l->gen++;
    l->want = k;
    l->next_pos = (int64_t)k * l->batch;
    for (int i = 0; i < l->nslots; i++)
        if (l->slots[i].writers == 0) l->slots[i].k = -1;
    pthread_cond_broadcast(&l->work_cv);
}

static void deliver_warnings(cg_loader *l) {
    pthread_mutex_lock(&l->info_mu);
    char **msgs = l->msgs;
    int n = l->nmsgs;
    cg_loader_warn_fn fn = l->warn;
    void *user = l->warn_user;
    l->msgs = NULL, l->nmsgs = 0, l->msg_cap = 0;
    pthread_mutex_unlock(&l->info_mu);
    for (int i = 0; i < n; i++) {
        if (fn) fn(user, msgs[i]);
        free(msgs[i]);
    }
    free(msgs);
}

cg_status cg_loader_next(cg_loader *l, long k, float *dst, double *waited_s) {
    if (waited_s) *waited_s = 0.0;
    if (!l || !dst) return cg_fail(CG_ERR_ARG, "cg_loader_next: null argument");
    if (k < 0 || k > (long)((INT64_MAX / 4 - l->first) / l->stride))
        return cg_fail(CG_ERR_ARG, "cg_loader_next: batch index %ld out of range", k);
    pthread_mutex_lock(&l->mu);
    if (k != l->want) restart_at(l, k);
    slot *s = &l->slots[k % l->nslots];
    double t0 = now_s();
    int waited = 0;
    while (!(s->k == k && s->gen == l->gen && s->done == l->batch)) {
        waited = 1;
        pthread_cond_wait(&l->ready_cv, &l->mu);
    }
    if (waited && waited_s) *waited_s = now_s() - t0;
    cg_status err = s->err;
    char msg[sizeof s->msg];
    memcpy(msg, s->msg, sizeof msg);
    pthread_mutex_unlock(&l->mu);

    /* No worker can touch the slot now: its images are all done, and the next batch that
     * maps to it (k + nslots) may start only once `want` passes k. */
    if (err == CG_OK) memcpy(dst, s->buf, sizeof(float) * (size_t)l->batch * 3 * l->size * l->size);

    pthread_mutex_lock(&l->mu);
    s->k = -1;
    if (err == CG_OK) {
        l->want = k + 1;
        pthread_cond_broadcast(&l->work_cv);
    } else {
        restart_at(l, k); /* so that a retry prepares batch k again */
    }
    pthread_mutex_unlock(&l->mu);
    deliver_warnings(l);
    if (err != CG_OK) return cg_fail(err, "%s", msg);
    return CG_OK;
}

/* ---- open and close ------------------------------------------------------------------ */

void cg_loader_close(cg_loader *l) {
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    atomic_store(&l->stop, 1);
    pthread_cond_broadcast(&l->work_cv);
    pthread_cond_broadcast(&l->ready_cv);
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; i < l->started; i++) pthread_join(l->workers[i].th, NULL);
    if (l->workers)
        for (int i = 0; i < l->nthreads; i++) {
            worker *w = &l->workers[i];
            free(w->pc[0].perm);
            free(w->pc[1].perm);
            free(w->crop);
            free(w->out);
        }
    free(l->workers);
    if (l->slots)
        for (int i = 0; i < l->nslots; i++) free(l->slots[i].buf);
    free(l->slots);
    for (int i = 0; i < l->nbad; i++) free(l->bad[i].reason);
    free(l->bad);
    for (int i = 0; i < l->nmsgs; i++) free(l->msgs[i]);
    free(l->msgs);
    free(l->file);
    for (int i = 0; i < l->n; i++) free(l->paths[i]);
    free(l->paths);
    free(l->dir);
    pthread_cond_destroy(&l->work_cv);
    pthread_cond_destroy(&l->ready_cv);
    pthread_mutex_destroy(&l->mu);
    pthread_mutex_destroy(&l->info_mu);
    free(l);
}

cg_status cg_loader_open(cg_loader **out, const char *dir, int batch, int size, uint64_t seed,
                         int stream, int threads, int prefetch) {
    if (!out) return cg_fail(CG_ERR_ARG, "cg_loader_open: null argument");
    *out = NULL;
    if (!dir || !*dir) return cg_fail(CG_ERR_ARG, "cg_loader_open: no folder given");
    if (batch < 1 || size < 1 || size > CG_LOADER_MAX_SIZE)
        return cg_fail(CG_ERR_ARG, "cg_loader_open: batch %d and size %d must be >= 1 (size <= %d)",
                       batch, size, CG_LOADER_MAX_SIZE);
    if (threads < 1 || threads > CG_LOADER_MAX_THREADS || prefetch < 1 || prefetch > CG_LOADER_MAX_PREFETCH)
        return cg_fail(CG_ERR_ARG, "cg_loader_open: threads %d and prefetch %d must be in 1..%d",
                       threads, prefetch, CG_LOADER_MAX_THREADS);
    size_t floats = (size_t)batch * 3 * size * size;
    if (floats > ((size_t)1 << 40) / sizeof(float) / (size_t)prefetch)
        return cg_fail(CG_ERR_ARG, "cg_loader_open: %d batches of %d at %dx%d are too large", prefetch,
                       batch, size, size);

    cg_loader *l = calloc(1, sizeof *l);
    if (!l) return cg_fail(CG_ERR_NOMEM, "cg_loader_open: out of memory");
    pthread_mutex_init(&l->mu, NULL);
    pthread_mutex_init(&l->info_mu, NULL);
    pthread_cond_init(&l->work_cv, NULL);
    pthread_cond_init(&l->ready_cv, NULL);
    atomic_init(&l->stop, 0);
    l->batch = batch, l->size = size, l->seed = seed, l->stream = stream;
    l->first = 0, l->stride = batch;
    l->nthreads = threads, l->nslots = prefetch;
    for (int v = 0; v < 256; v++) l->lut[v] = (float)(v / 127.5 - 1.0);
    cg_status s;
    l->dir = strdup(dir);
    if (!l->dir) {
        s = cg_fail(CG_ERR_NOMEM, "cg_loader_open: out of memory");
        goto fail;
    }
    if ((s = list_images(l)) != CG_OK) goto fail;

    l->file = calloc((size_t)l->n, 1);
    l->slots = calloc((size_t)prefetch, sizeof *l->slots);
    l->workers = calloc((size_t)threads, sizeof *l->workers);
    int ok = l->file && l->slots && l->workers;
    for (int i = 0; ok && i < prefetch; i++) {
        l->slots[i].k = -1;
        ok = (l->slots[i].buf = malloc(sizeof(float) * floats)) != NULL;
    }
    for (int i = 0; ok && i < threads; i++) {
        worker *w = &l->workers[i];
        w->l = l;
        for (int c = 0; c < 2; c++) {
            w->pc[c].epoch = -1;
            ok = ok && (w->pc[c].perm = malloc(sizeof(int) * (size_t)l->n)) != NULL;
        }
        ok = ok && (w->out = malloc((size_t)size * size * 3)) != NULL;
    }
    if (!ok) {
        s = cg_fail(CG_ERR_NOMEM, "%s: out of memory for %d batches of %d at %dx%d", dir, prefetch,
                    batch, size, size);
        goto fail;
    }

    /* Workers block every signal they can, so that a signal meant for the process (Ctrl-C)
     * lands on the caller's threads and interrupts what they are doing. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < threads; i++) {
        int e = pthread_create(&l->workers[i].th, NULL, worker_main, &l->workers[i]);
        if (e) {
            s = cg_fail(CG_ERR_NOMEM, "%s: cannot start a loader thread: %s", dir, strerror(e));
            break;
        }
        l->started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (l->started < threads) goto fail;
    *out = l;
    return CG_OK;
fail:
    cg_loader_close(l);
    return s;
}

cg_status cg_loader_set_slice(cg_loader *l, int64_t first, int stride) {
    if (!l) return cg_fail(CG_ERR_ARG, "cg_loader_set_slice: null loader");
    if (first < 0 || stride < l->batch || first > INT64_MAX / 4)
        return cg_fail(CG_ERR_ARG, "cg_loader_set_slice: first position %lld and stride %d (batch %d) out of range",
                       (long long)first, stride, l->batch);
    pthread_mutex_lock(&l->mu);
    l->first = first, l->stride = stride;
    restart_at(l, 0); /* what was prefetched belongs to the old slice */
    pthread_mutex_unlock(&l->mu);
    return CG_OK;
}

/* ---- reporting --------------------------------------------------------------------- */

int cg_loader_count(const cg_loader *l) { return l ? l->n : 0; }

void cg_loader_set_warn(cg_loader *l, cg_loader_warn_fn fn, void *user) {
    if (!l) return;
    pthread_mutex_lock(&l->info_mu);
    l->warn = fn, l->warn_user = user;
    pthread_mutex_unlock(&l->info_mu);
}

/* The getters take the lock of a const loader: the counters change under the workers. */
int cg_loader_bad_count(const cg_loader *l) {
    if (!l) return 0;
    cg_loader *m = (cg_loader *)l;
    pthread_mutex_lock(&m->info_mu);
    int n = m->nbad;
    pthread_mutex_unlock(&m->info_mu);
    return n;
}

const char *cg_loader_bad_name(const cg_loader *l, int i) {
    if (!l) return NULL;
    cg_loader *m = (cg_loader *)l;
    pthread_mutex_lock(&m->info_mu);
    const char *r = i >= 0 && i < m->nbad ? m->bad[i].path : NULL;
    pthread_mutex_unlock(&m->info_mu);
    return r;
}

const char *cg_loader_bad_reason(const cg_loader *l, int i) {
    if (!l) return NULL;
    cg_loader *m = (cg_loader *)l;
    pthread_mutex_lock(&m->info_mu);
    const char *r = NULL;
    if (i >= 0 && i < m->nbad) r = m->bad[i].reason ? m->bad[i].reason : "(reason lost: out of memory)";
    pthread_mutex_unlock(&m->info_mu);
    return r;
}

int cg_loader_small_count(const cg_loader *l) {
    if (!l) return 0;
    cg_loader *m = (cg_loader *)l;
    pthread_mutex_lock(&m->info_mu);
    int n = m->nsmall;
    pthread_mutex_unlock(&m->info_mu);
    return n;
}
