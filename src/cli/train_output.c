/* train_output.c: what `cartoongan train` leaves behind, and resuming from it:
 * TensorBoard event files (LOG_DIR/init, LOG_DIR/gan), the validation grids
 * (RESULT_DIR/stepNNNNNNNN_PHASE_epochNNN.png: each testA photo over its cartoon, at full
 * size through cg_stylize, shown as thumbnails) and RESULT_DIR/progress.gif made from
 * them, and the checkpoints (CKPT_DIR/ckpt-NNNNNNNN.safetensors, the newest 3 kept). Every
 * file is written to a temporary name and renamed, so a crash or a full disk never leaves
 * a half file in place of a good one. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/train.h"
#include "io/gif.h"
#include "io/image.h"
#include "model/safetensors.h"

#define CELL 128 /* a validation thumbnail's box; grids are at most GRID_COLS cells wide */
#define GRID_COLS 8

/* ---- small helpers ---- */

/* Names in dir that start with `prefix` and end with `suffix` (case-insensitively),
 * sorted; *n gets the count. NULL with *n = 0 when there are none or dir is unreadable. */
static char **list_dir(const char *dir, const char *prefix, const char *suffix, int *n) {
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char **v = NULL;
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name), sl = strlen(suffix);
        if (e->d_name[0] == '.' || strncmp(e->d_name, prefix, strlen(prefix)) || len < sl ||
            strcasecmp(e->d_name + len - sl, suffix))
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            char **nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv) break;
            v = nv;
        }
        if (!(v[*n] = strdup(e->d_name))) break;
        (*n)++;
    }
    closedir(d);
    if (v) qsort(v, (size_t)*n, sizeof *v, cli_cmp_str);
    return v;
}

static void free_list(char **v, int n) {
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

static const char *phase_name(cg_train_phase p) { return p == CG_PHASE_INIT ? "init" : "gan"; }

/* A folder exists (made if missing) and takes files: a read-only or full one is found
 * before hours of training, not at the first checkpoint. */
static int writable_dir(const char *dir, const char *flag) {
    if (cg_mkdir_p(dir) != CG_OK) {
        fprintf(stderr, "cartoongan train: %s (%s): %s\n", dir, flag, cg_last_error());
        return -1;
    }
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/.cartoongan-write-test", dir);
    if (cg_write_file_atomic(probe, "ok", 2) != CG_OK) {
        fprintf(stderr, "cartoongan train: %s (%s) is not writable: %s\n", dir, flag, cg_last_error());
        return -1;
    }
    unlink(probe);
    return 0;
}

/* [n][3][s][s] BGR in [-1, 1] -> a row of n RGB8 images, s x (n s) */
static void batch_row(uint8_t *dst, int stride_px, const float *x, int n, int s) {
    const size_t plane = (size_t)s * s;
    for (int i = 0; i < n; i++)
        for (int y = 0; y < s; y++)
            for (int xx = 0; xx < s; xx++)
                for (int c = 0; c < 3; c++) {
                    float v = x[((size_t)i * 3 + (2 - c)) * plane + (size_t)y * s + xx];
                    long q = lrintf((v + 1.f) * 127.5f);
                    dst[((size_t)y * stride_px + (size_t)i * s + xx) * 3 + c] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
                }
}

/* Rows of batches stacked: rows x [n][3][s][s] -> an RGB8 image (n s) x (rows s). */
static int log_rows(train_run *r, const char *tag, int64_t step, const float *const *rows, int nrows) {
    const int n = r->o->batch, s = r->o->input_size;
    uint8_t *img = malloc((size_t)n * s * s * nrows * 3);
    if (!img) return fprintf(stderr, "cartoongan train: out of memory\n"), -1;
    for (int k = 0; k < nrows; k++) batch_row(img + (size_t)k * s * n * s * 3, n * s, rows[k], n, s);
    cg_status st = cg_events_image(r->events[r->phase], tag, step, img, n * s, nrows * s);
    free(img);
    if (st != CG_OK) return fprintf(stderr, "cartoongan train: %s\n", cg_last_error()), -1;
    return 0;
}

/* Fits src (w x h) into a CELL x CELL box of dst (stride in pixels) at (x0, y0), centred on white. */
static int put_thumb(uint8_t *dst, int stride, int x0, int y0, const uint8_t *src, int w, int h) {
    double k = fmin((double)CELL / w, (double)CELL / h);
    int tw = (int)fmax(1, lround(w * k)), th = (int)fmax(1, lround(h * k));
    uint8_t *t = malloc((size_t)tw * th * 3);
    if (!t) return -1;
    cg_resize_rgb(t, tw, th, src, w, h);
    int ox = x0 + (CELL - tw) / 2, oy = y0 + (CELL - th) / 2;
    for (int y = 0; y < th; y++) memcpy(dst + ((size_t)(oy + y) * stride + ox) * 3, t + (size_t)y * tw * 3, (size_t)tw * 3);
    free(t);
    return 0;
}

/* ---- setup, resume, init-from ---- */

int train_setup_outputs(train_run *r) {
    const train_opts *o = r->o;
    if (writable_dir(o->ckpt_dir, "--checkpoint-dir") || writable_dir(o->log_dir, "--log-dir") ||
        writable_dir(o->result_dir, "--result-dir"))
        return -1;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/testA", o->dataset);
    int n = 0;
    char **names = NULL;
    static const char *const ext[] = {".jpg", ".jpeg", ".png", ".webp"};
    for (int e = 0; e < 4; e++) {
        int k;
        char **v = list_dir(dir, "", ext[e], &k);
        if (!k) continue;
        char **nv = realloc(names, (size_t)(n + k) * sizeof *names);
        if (!nv) {
            free_list(v, k);
            break;
        }
        names = nv;
        for (int i = 0; i < k; i++) {
            char *p = malloc(strlen(dir) + strlen(v[i]) + 2);
            if (p) sprintf(p, "%s/%s", dir, v[i]);
            names[n++] = p;
        }
        free_list(v, k);
    }
    if (names) qsort(names, (size_t)n, sizeof *names, cli_cmp_str);
    r->val_paths = names, r->nval = n;
    if (!n && !o->quiet)
        fprintf(stderr, "cartoongan train: note: %s holds no validation photos; no grids or progress.gif will be made\n", dir);
    return 0;
}

/* "ckpt-00001234.safetensors" -> 1234, or -1 */
static long long ckpt_step(const char *name) {
    char *end;
    if (strncmp(name, "ckpt-", 5)) return -1;
    long long s = strtoll(name + 5, &end, 10);
    return strcmp(end, ".safetensors") ? -1 : s;
}

static int newest_checkpoint(const char *dir, char *path, size_t n, long long *step) {
    int k;
    char **v = list_dir(dir, "ckpt-", ".safetensors", &k);
    *step = -1;
    for (int i = 0; i < k; i++) {
        long long s = ckpt_step(v[i]);
        if (s > *step) *step = s, snprintf(path, n, "%s/%s", dir, v[i]);
    }
    free_list(v, k);
    return *step >= 0 ? 0 : -1;
}

/* A whole number from the checkpoint's metadata: 0, or -1 when absent or not one. */
static int meta_ll(const char *path, const char *key, long long *out) {
    char v[64], *end;
    if (st_read_metadata(path, key, v, sizeof v) != CG_OK) return -1;
    *out = strtoll(v, &end, 10);
    return end == v || *end || *out < 0 ? -1 : 0;
}

static int meta_str(const char *path, const char *key, char *v, size_t n) {
    if (st_read_metadata(path, key, v, n) == CG_OK) return 0;
    fprintf(stderr, "cartoongan train: cannot resume from %s: %s\n", path, cg_last_error());
    return -1;
}

int train_resume(train_run *r) {
    const train_opts *o = r->o;
    char path[4096], v[256];
    long long step;
    if (newest_checkpoint(o->ckpt_dir, path, sizeof path, &step) != 0) {
        fprintf(stderr, "cartoongan train: --resume: %s holds no checkpoint (ckpt-*.safetensors)\n", o->ckpt_dir);
        return -1;
    }
    /* the run's shape must be the checkpoint's, or its data order and Adam state mean nothing */
    static const char *const key[6] = {"batch_size", "input_size", "seed", "gan_loss", "d_norm", "init_epochs"};
    char wants[6][64];
    snprintf(wants[0], 64, "%d", o->batch), snprintf(wants[1], 64, "%d", o->input_size);
    snprintf(wants[2], 64, "%llu", (unsigned long long)o->seed), snprintf(wants[3], 64, "%s", o->gan_loss);
    snprintf(wants[4], 64, "%s", o->d_norm), snprintf(wants[5], 64, "%d", o->init_epochs);
    static const char *const flag[6] = {"--batch-size", "--input-size", "--seed", "--gan-loss", "--d-norm", "--init-epochs"};
    /* A checkpoint that records its data position in images resumes with any batch and any
     * number of processes (the global batch may then change; the data goes on where it
     * stopped); an older one's position is counted in its own batches. */
    long long old_global = 0;
    const int positioned = meta_ll(path, "data_pos", &old_global) == 0 && meta_ll(path, "global_batch", &old_global) == 0;
    for (int i = 0; i < 6; i++) {
        if (meta_str(path, key[i], v, sizeof v)) return -1;
        if (i == 0 && positioned) continue;
        if (strcmp(v, wants[i])) {
            fprintf(stderr, "cartoongan train: cannot resume from %s: it was trained with %s %s, this run has %s\n", path,
                    flag[i], v, wants[i]);
            return -1;
        }
    }
    if (meta_str(path, "phase", v, sizeof v)) return -1;
    int gan_phase = !strcmp(v, "gan");
    /* the position, global (any number of processes may resume it); a checkpoint written
     * before several processes could train has none, and was written by one process */
    long long pos, epoch_images, phase_first, next_epoch;
    if (meta_ll(path, "data_pos", &pos) || meta_ll(path, "epoch_images", &epoch_images) ||
        meta_ll(path, "phase_first_step", &phase_first) || meta_ll(path, "next_epoch", &next_epoch)) {
        const long long spe = (r->nphotos + o->batch - 1) / o->batch;
        phase_first = gan_phase ? (long long)o->init_epochs * spe : 0;
        pos = step * o->batch;
        next_epoch = (step - phase_first) / spe;
        epoch_images = (step - phase_first) % spe * o->batch;
    }
    if (cg_trainer_load_checkpoint(r->t, path) != CG_OK) {
        fprintf(stderr, "cartoongan train: cannot resume: %s (the file is left as it is)\n", cg_last_error());
        return -1;
    }
    if (positioned && old_global != r->global_batch && !o->quiet)
        fprintf(stderr, "cartoongan train: note: %s was trained with a global batch of %lld images; this run's is %d "
                        "(--batch-size %d x %d process%s)\n", path, old_global, r->global_batch, o->batch, r->processes,
                r->processes == 1 ? "" : "es");
    r->step = step;
    r->pos = pos;
    r->phase = gan_phase ? CG_PHASE_GAN : CG_PHASE_INIT;
    r->phase_step0 = phase_first;
    r->epoch = (int)next_epoch, r->epoch_images = epoch_images;
    r->phase_switch_pending = !gan_phase && o->init_epochs > 0;
    for (int i = 0; i < TRAIN_LOSSES; i++) {
        char key[16];
        snprintf(key, sizeof key, "sum_%d", i);
        if (st_read_metadata(path, key, v, sizeof v) != CG_OK ||
            sscanf(v, "%lf %d %lf %d", &r->sum[i], &r->count[i], &r->epoch_sum[i], &r->epoch_count[i]) != 4)
            r->sum[i] = r->epoch_sum[i] = 0, r->count[i] = r->epoch_count[i] = 0;
    }
    if (st_read_metadata(path, "logged_once", v, sizeof v) != CG_OK ||
        sscanf(v, "%d %d", &r->logged_once[0], &r->logged_once[1]) != 2)
        r->logged_once[0] = r->logged_once[1] = 0;
    r->resumed = 1;
    snprintf(r->last_ckpt, sizeof r->last_ckpt, "%s", path);
    if (!o->quiet) fprintf(stderr, "cartoongan train: resuming from %s (step %lld)\n", path, step);
    return 0;
}

int train_init_from(train_run *r) {
    const train_opts *o = r->o;
    char path[4096];
    struct stat sb;
    if (strchr(o->init_from, '/') || stat(o->init_from, &sb) == 0)
        snprintf(path, sizeof path, "%s", o->init_from);
    else {
        /* a style's name: looked up as cartoonize looks it up */
        const char *dir = cli_find_style(o->weights_dir, o->init_from);
        if (!dir) {
            cli_report_missing_style(o->weights_dir, o->init_from);
            return -1;
        }
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, o->init_from);
    }
    if (cg_trainer_load(r->t, CG_NET_G, path) != CG_OK) {
        fprintf(stderr, "cartoongan train: --init-from %s: %s\n", o->init_from, cg_last_error());
        return -1;
    }
    return 0;
}

/* ---- TensorBoard ---- */

static int open_events(train_run *r) {
    if (r->events[r->phase]) return 0;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", r->o->log_dir, phase_name(r->phase));
    if (cg_events_open(&r->events[r->phase], dir) != CG_OK) {
        fprintf(stderr, "cartoongan train: %s\n", cg_last_error());
        return -1;
    }
    return 0;
}

/* The validation photos alone, as a grid of thumbnails (top halves of the result grid). */
static uint8_t *val_grid(train_run *r, cg_model *m, int *gw, int *gh);

int train_log_once(train_run *r) {
    if (open_events(r)) return -1;
    if (r->logged_once[r->phase]) return 0;
    r->logged_once[r->phase] = 1;
    char tag[64];
    /* the batch this phase starts with (the loop asks for it again: the loaders give the same) */
    if (cg_loader_next(r->photos, train_data_index(r), r->batch_photo, NULL) != CG_OK) goto fail;
    const float *rows[3] = {r->batch_photo, r->batch_cartoon, r->batch_smooth};
    int nrows = 1;
    if (r->phase == CG_PHASE_GAN) {
        if (cg_loader_next(r->cartoons, train_data_index(r), r->batch_cartoon, NULL) != CG_OK ||
            cg_loader_next(r->smooths, train_data_index(r), r->batch_smooth, NULL) != CG_OK)
            goto fail;
        nrows = 3;
    }
    snprintf(tag, sizeof tag, "%s_sample_images", phase_name(r->phase));
    if (log_rows(r, tag, r->step, rows, nrows)) return -1;
    if (r->nval) {
        int w, h;
        uint8_t *g = val_grid(r, NULL, &w, &h);
        if (!g) return -1;
        snprintf(tag, sizeof tag, "%s_val_sample_images", phase_name(r->phase));
        cg_status st = cg_events_image(r->events[r->phase], tag, r->step, g, w, h);
        free(g);
        if (st != CG_OK) return fprintf(stderr, "cartoongan train: %s\n", cg_last_error()), -1;
    }
    return cg_events_flush(r->events[r->phase]) == CG_OK ? 0 : (fprintf(stderr, "cartoongan train: %s\n", cg_last_error()), -1);
fail:
    fprintf(stderr, "cartoongan train: %s\n", cg_last_error());
    return -1;
}

int train_log_batch(train_run *r, int64_t step, const char *what, const float *images) {
    char tag[64];
    snprintf(tag, sizeof tag, "%s_%s", phase_name(r->phase), what);
    const float *rows[2] = {r->batch_photo, images};
    return log_rows(r, tag, step, rows, 2);
}

/* ---- validation ---- */

/* With m NULL: the photos alone (one row of cells per GRID_COLS photos); otherwise each
 * cell holds the photo over its cartoon. */
static uint8_t *val_grid(train_run *r, cg_model *m, int *gw, int *gh) {
    const int n = r->nval < TRAIN_MAX_VAL ? r->nval : TRAIN_MAX_VAL, cols = n < GRID_COLS ? n : GRID_COLS;
    const int rows = (n + cols - 1) / cols, cell_h = m ? 2 * CELL : CELL;
    *gw = cols * CELL, *gh = rows * cell_h;
    uint8_t *g = malloc((size_t)*gw * *gh * 3);
    if (!g) return fprintf(stderr, "cartoongan train: out of memory\n"), NULL;
    memset(g, 255, (size_t)*gw * *gh * 3);
    for (int i = 0; i < r->nval; i++) {
        cg_image img = {0};
        if (cg_image_load(&img, r->val_paths[i], 0) != CG_OK) {
            progress_message(&r->bar, "warning: validation photo skipped: %s", cg_last_error());
            continue;
        }
        int ok = 1;
        if (m) { /* every photo is stylized (at full size: that is what a user gets), even past the grid */
            uint8_t *out = malloc((size_t)img.w * img.h * 3);
            ok = out && cg_stylize(m, out, img.rgb, img.w, img.h, NULL) == CG_OK;
            if (!ok) progress_message(&r->bar, "warning: %s: %s", r->val_paths[i], out ? cg_last_error() : "out of memory");
            if (ok && i < n) put_thumb(g, *gw, i % cols * CELL, i / cols * cell_h + CELL, out, img.w, img.h);
            free(out);
        }
        if (ok && i < n) put_thumb(g, *gw, i % cols * CELL, i / cols * cell_h, img.rgb, img.w, img.h);
        cg_image_free(&img);
    }
    return g;
}

/* progress.gif: the grids of the result folder with the newest one's size, in step order;
 * at most GIF_FRAMES of them, evenly spaced, the newest always last (it is rewritten at
 * every validation, so its cost must not grow with the run). */
#define GIF_FRAMES 100
static int write_progress_gif(train_run *r, int w, int h) {
    int k;
    char **v = list_dir(r->o->result_dir, "step", ".png", &k), path[4096];
    snprintf(path, sizeof path, "%s/progress.gif", r->o->result_dir);
    cg_gif_writer *gw = NULL;
    cg_status st = cg_gif_writer_open(&gw, path, w, h, 0, 0);
    const int frames = k < GIF_FRAMES ? k : GIF_FRAMES;
    for (int f = 0; st == CG_OK && f < frames; f++) {
        const int i = frames == 1 ? k - 1 : (int)((long long)f * (k - 1) / (frames - 1));
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", r->o->result_dir, v[i]);
        cg_image img = {0};
        if (cg_image_load(&img, p, 0) != CG_OK) continue;
        if (img.w == w && img.h == h) st = cg_gif_writer_add(gw, img.rgb, f + 1 == frames ? 200 : 50);
        cg_image_free(&img);
    }
    free_list(v, k);
    if (st == CG_OK) st = cg_gif_writer_finish(gw);
    else cg_gif_writer_abort(gw);
    if (st != CG_OK) return fprintf(stderr, "cartoongan train: %s\n", cg_last_error()), -1;
    return 0;
}

int train_validate(train_run *r) {
    if (!r->nval) return 0;
    cg_model *m;
    if (cg_trainer_generator(r->t, &m) != CG_OK) return fprintf(stderr, "cartoongan train: %s\n", cg_last_error()), -1;
    cg_model_set_threads(m, r->o->threads);
    int w, h;
    uint8_t *g = val_grid(r, m, &w, &h);
    cg_model_free(m);
    if (!g) return -1;
    char path[4096], tag[64];
    snprintf(path, sizeof path, "%s/step%08lld_%s_epoch%03d.png", r->o->result_dir, (long long)r->step,
             phase_name(r->phase), r->epoch + 1);
    cg_image img = {.w = w, .h = h, .rgb = g};
    int rc = 0;
    if (cg_image_save(&img, path, CG_FMT_PNG) != CG_OK) {
        fprintf(stderr, "cartoongan train: %s\n", cg_last_error());
        rc = -1;
    }
    snprintf(tag, sizeof tag, "%s_val_generated_images", phase_name(r->phase));
    if (!rc && (open_events(r) || cg_events_image(r->events[r->phase], tag, r->step, g, w, h) != CG_OK ||
                cg_events_flush(r->events[r->phase]) != CG_OK)) {
        fprintf(stderr, "cartoongan train: %s\n", cg_last_error());
        rc = -1;
    }
    free(g);
    return rc ? rc : write_progress_gif(r, w, h);
}

/* ---- checkpoints ---- */

/* s as the inside of a JSON string (the flags' paths may hold quotes or backslashes). */
static void json_escape(char *dst, size_t n, const char *s) {
    size_t o = 0;
    for (; *s && o + 7 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') dst[o++] = '\\', dst[o++] = (char)c;
        else if (c < 0x20) o += (size_t)snprintf(dst + o, n - o, "\\u%04x", c);
        else dst[o++] = (char)c;
    }
    dst[o] = '\0';
}

int train_checkpoint(train_run *r) {
    const train_opts *o = r->o;
    char path[4096], meta[8192], vgg[2048], ds[2048];
    snprintf(path, sizeof path, "%s/ckpt-%08lld.safetensors", o->ckpt_dir, (long long)r->step);
    json_escape(vgg, sizeof vgg, o->vgg);
    json_escape(ds, sizeof ds, o->dataset);
    snprintf(meta, sizeof meta,
             "\"step\":\"%lld\",\"phase\":\"%s\",\"epoch\":\"%d\",\"batch_size\":\"%d\",\"input_size\":\"%d\","
             "\"seed\":\"%llu\",\"gan_loss\":\"%s\",\"d_norm\":\"%s\",\"init_epochs\":\"%d\",\"epochs\":\"%d\","
             "\"lr_init\":\"%g\",\"lr_g\":\"%g\",\"lr_d\":\"%g\",\"content_weight\":\"%g\",\"style_weight\":\"%g\","
             "\"vgg\":\"%s\",\"dataset\":\"%s\",\"data_batch\":\"%lld\"",
             (long long)r->step, phase_name(r->phase), r->epoch, o->batch, o->input_size, (unsigned long long)o->seed,
             o->gan_loss, o->d_norm, o->init_epochs, o->epochs, o->lr_init, o->lr_g, o->lr_d, o->content_weight,
             o->style_weight, vgg, ds, (long long)r->step);
    /* the running means since the last report and since the epoch began, and which
     * once-only images were logged: a resumed run then logs what an unbroken one would */
    size_t m = strlen(meta);
    for (int i = 0; i < TRAIN_LOSSES && m < sizeof meta; i++)
        m += (size_t)snprintf(meta + m, sizeof meta - m, ",\"sum_%d\":\"%.17g %d %.17g %d\"", i, r->sum[i], r->count[i],
                              r->epoch_sum[i], r->epoch_count[i]);
    if (m < sizeof meta)
        m += (size_t)snprintf(meta + m, sizeof meta - m, ",\"logged_once\":\"%d %d\"", r->logged_once[0], r->logged_once[1]);
    /* where the next step starts, in images: what any number of processes resumes from */
    const int end = r->epoch_images >= r->nphotos;
    if (m < sizeof meta)
        snprintf(meta + m, sizeof meta - m,
                 ",\"data_pos\":\"%lld\",\"next_epoch\":\"%d\",\"epoch_images\":\"%lld\",\"phase_first_step\":\"%lld\","
                 "\"processes\":\"%d\",\"global_batch\":\"%d\"",
                 (long long)r->pos, r->epoch + end, end ? 0LL : (long long)r->epoch_images, (long long)r->phase_step0,
                 r->processes, r->global_batch);
    if (cg_trainer_save_checkpoint(r->t, path, meta) != CG_OK) {
        progress_message(&r->bar, "cartoongan train: cannot write a checkpoint: %s; %s%s", cg_last_error(),
                         r->last_ckpt[0] ? "the previous one is intact: " : "no earlier checkpoint",
                         r->last_ckpt[0] ? r->last_ckpt : "");
        return -1;
    }
    snprintf(r->last_ckpt, sizeof r->last_ckpt, "%s", path);
    /* keep the newest TRAIN_KEEP_CHECKPOINTS, removed only now that the new one is in place */
    int k;
    char **v = list_dir(o->ckpt_dir, "ckpt-", ".safetensors", &k);
    int kept = 0;
    for (int i = k - 1; i >= 0; i--) {
        if (ckpt_step(v[i]) < 0 || ++kept <= TRAIN_KEEP_CHECKPOINTS) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", o->ckpt_dir, v[i]);
        unlink(p);
    }
    free_list(v, k);
    return 0;
}

/* ---- the end ---- */

void train_report_files(train_run *r) {
    cg_loader *ls[3] = {r->photos, r->cartoons, r->smooths};
    int bad = 0, small = 0;
    for (int l = 0; l < 3; l++) {
        if (!ls[l]) continue;
        small += cg_loader_small_count(ls[l]);
        for (int i = 0; i < cg_loader_bad_count(ls[l]); i++, bad++) {
            if (!bad) fprintf(stderr, "cartoongan train: images skipped as unreadable:\n");
            fprintf(stderr, "  %s: %s\n", cg_loader_bad_name(ls[l], i), cg_loader_bad_reason(ls[l], i));
        }
    }
    if (small && !r->o->quiet)
        fprintf(stderr, "cartoongan train: %d images were smaller than the %d-pixel crop and were upscaled\n", small,
                r->o->input_size);
}

void train_close_outputs(train_run *r) {
    for (int p = 0; p < 2; p++) {
        if (r->events[p] && cg_events_flush(r->events[p]) != CG_OK)
            fprintf(stderr, "cartoongan train: %s\n", cg_last_error());
        cg_events_close(r->events[p]);
        r->events[p] = NULL;
    }
    for (int i = 0; i < r->nval; i++) free(r->val_paths[i]);
    free(r->val_paths);
}
