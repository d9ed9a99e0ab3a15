/* trainer.c: one CartoonGAN training step (cg_trainer_step) and what it needs: the
 * parameters, gradients and Adam moments of G and D (each network's four arrays carved
 * from one allocation, in the order its tensors are listed), the activations of the three
 * networks in one arena sized at creation, the losses, and the optimizer step as one
 * plain loop, after llm.c's train_gpt2.c. doc/training-engine.md says what is computed.
 * Data-parallel training (cg_trainer_set_comm) sums each network's gradients across the
 * processes in one call over its gradient array, as llm.c all-reduces its one gradient
 * buffer, and the losses in another, before anything is decided on them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/generator.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "nn/train_ops.h"
#include "status.h"
#include "train/nets.h"

/* A network's tensors: params, grads, Adam's m and v, each `count` floats. */
typedef struct {
    const tensor_info *info;
    int ntensors;
    size_t count;
    float *mem; /* 4 * count */
    float *params, *grads, *m, *v;
    long t;     /* Adam steps taken */
} param_set;

struct cg_trainer {
    cg_train_config c;
    cg_pool *pool;
    net_ctx ctx;
    param_set g, d;
    gen_layers gp, gg;
    d_layers dp, dg;
    vgg_weights vgg;
    int has_vgg;
    gen_acts ga;
    d_acts da;
    vgg_acts va;
    float *block; /* the arena below */
    float *photo_feat, *dfeat, *dfake, *dlogits, *gram_c, *gram_f, *dgram;
    float *d_backup; /* D's params, m and v before its update, restored if G's half fails */
    cg_train_comm comm; /* data-parallel training: processes > 1 (cg_trainer_set_comm) */
    int comm_failed;    /* a sum across processes failed during this step */
    long steps;
    double prof[PROF_N];
};

const char *const trainer_profile_names[PROF_N] = {
    "G forward", "D loss (3 D forward + backward)", "VGG19 forward", "VGG19 backward",
    "D forward + backward for G's loss", "G backward", "Adam (both)"};

const double *trainer_profile(const cg_trainer *t) { return t->prof; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Adds the time since *t0 to slot i and restarts the clock. */
static void lap(cg_trainer *t, int i, double *t0) {
    double n = now_s();
    t->prof[i] += n - *t0;
    *t0 = n;
}

void cg_train_config_default(cg_train_config *c) {
    memset(c, 0, sizeof *c);
    c->batch = 4, c->height = 256, c->width = 256;
    c->lr_g = 8e-5f, c->lr_d = 3e-5f;
    c->content_weight = 10.f, c->style_weight = 0.f;
    c->gan_loss = CG_GAN_LSGAN, c->d_norm = CG_DNORM_BATCH;
}

/* ---- parameters ---- */

static int param_set_alloc(param_set *s, const tensor_info *info, int n) {
    s->info = info, s->ntensors = n, s->count = 0, s->t = 0;
    for (int i = 0; i < n; i++) s->count += tensor_info_count(&info[i]);
    s->mem = calloc(4 * s->count, sizeof(float));
    if (!s->mem) return -1;
    s->params = s->mem, s->grads = s->mem + s->count, s->m = s->mem + 2 * s->count, s->v = s->mem + 3 * s->count;
    return 0;
}

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* N(0, 1) by Box-Muller from 53-bit uniforms in (0, 1). */
static double normal(uint64_t *state) {
    double u1 = ((splitmix64(state) >> 11) + 0.5) / 9007199254740992.0;
    double u2 = ((splitmix64(state) >> 11) + 0.5) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The seeded initialisation (DCGAN's, as the seed project): conv weights N(0, 0.02),
 * biases 0, norm scales 1, shifts 0. */
static void param_set_init(param_set *s, uint64_t seed) {
    uint64_t state = seed;
    float *p = s->params;
    for (int i = 0; i < s->ntensors; i++) {
        const tensor_info *t = &s->info[i];
        size_t n = tensor_info_count(t);
        int is_scale = t->ndim == 1 && (ends_with(t->name, ".scale") ||
                                        (strncmp(t->name, "norm", 4) == 0 && ends_with(t->name, ".weight")));
        for (size_t j = 0; j < n; j++) p[j] = t->ndim == 4 ? (float)(0.02 * normal(&state)) : is_scale ? 1.f : 0.f;
        p += n;
    }
    memset(s->m, 0, 2 * s->count * sizeof(float));
    s->t = 0;
}

/* torch.optim.Adam's update (betas 0.5, 0.999, eps 1e-8, no weight decay), in the order
 * its single-tensor loop computes it: bias corrections in double, the rest in float. */
static void adam_step(param_set *s, float lr) {
    const float b1 = 0.5f, b2 = 0.999f, eps = 1e-8f;
    s->t++;
    const double bc1 = 1.0 - pow(0.5, (double)s->t), bc2 = 1.0 - pow(0.999, (double)s->t);
    const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    for (size_t i = 0; i < s->count; i++) {
        float g = s->grads[i];
        s->m[i] = s->m[i] * b1 + g * (1.f - b1);
        s->v[i] = s->v[i] * b2 + g * g * (1.f - b2);
        float denom = sqrtf(s->v[i]) / bc2_sqrt + eps;
        s->params[i] -= step_size * (s->m[i] / denom);
    }
}

/* The first non-finite value's tensor, or NULL when all are finite. */
static const char *non_finite(const param_set *s, const float *a) {
    for (int i = 0; i < s->ntensors; i++) {
        size_t n = tensor_info_count(&s->info[i]);
        for (size_t j = 0; j < n; j++)
            if (!isfinite(a[j])) return s->info[i].name;
        a += n;
    }
    return NULL;
}

/* ---- across processes ---- */

static int comm_on(const cg_trainer *t) { return t->comm.processes > 1; }

/* v[0..n) becomes its mean over the processes (their sum over K). Once a sum has failed
 * no more are attempted; the step then fails. */
static void comm_mean_floats(cg_trainer *t, float *v, size_t n) {
    if (t->comm_failed) return;
    if (t->comm.sum_floats(t->comm.user, v, n) != 0) {
        t->comm_failed = 1;
        return;
    }
    const float k = (float)t->comm.processes;
    for (size_t i = 0; i < n; i++) v[i] /= k;
}

static void comm_mean_doubles(cg_trainer *t, double *v, size_t n) {
    if (t->comm_failed) return;
    if (t->comm.sum_doubles(t->comm.user, v, n) != 0) {
        t->comm_failed = 1;
        return;
    }
    for (size_t i = 0; i < n; i++) v[i] /= t->comm.processes;
}

cg_status cg_trainer_set_comm(cg_trainer *t, const cg_train_comm *comm) {
    if (!t) return cg_fail(CG_ERR_ARG, "cg_trainer_set_comm: null trainer");
    if (!comm || comm->processes == 1) {
        memset(&t->comm, 0, sizeof t->comm);
        t->comm.processes = 1;
        t->ctx.comm = NULL;
        return CG_OK;
    }
    if (comm->processes < 1 || !comm->sum_floats || !comm->sum_doubles || !comm->broadcast)
        return cg_fail(CG_ERR_ARG, "cg_trainer_set_comm: %d processes, or a sum or broadcast callback missing",
                       comm->processes);
    t->comm = *comm;
    t->ctx.comm = &t->comm;
    return CG_OK;
}

cg_status cg_trainer_sync(cg_trainer *t) {
    if (!t) return cg_fail(CG_ERR_ARG, "cg_trainer_sync: null trainer");
    if (!comm_on(t)) return CG_OK;
    long counts[3] = {t->g.t, t->d.t, t->steps};
    /* params, m and v of each network (the gradients are recomputed by every step) */
    if (t->comm.broadcast(t->comm.user, counts, sizeof counts) != 0 ||
        t->comm.broadcast(t->comm.user, t->g.params, t->g.count * sizeof(float)) != 0 ||
        t->comm.broadcast(t->comm.user, t->g.m, 2 * t->g.count * sizeof(float)) != 0 ||
        t->comm.broadcast(t->comm.user, t->d.params, t->d.count * sizeof(float)) != 0 ||
        t->comm.broadcast(t->comm.user, t->d.m, 2 * t->d.count * sizeof(float)) != 0)
        return cg_fail(CG_ERR_IO, "cg_trainer_sync: the broadcast from process 0 failed");
    t->g.t = counts[0], t->d.t = counts[1], t->steps = counts[2];
    return CG_OK;
}

/* ---- creation ---- */

static void acc_max(size_t *m, size_t v) {
    if (v > *m) *m = v;
}

/* The largest workspace any convolution of the three networks needs. */
static size_t ws_floats(int n, int h, int w, int threads) {
    (void)n;
    const int h2 = h / 2, w2 = w / 2, h3 = h / 4, w3 = w / 4;
    const conv_dims convs[] = {
        /* G */
        {3, h + 6, w + 6, 64, 7, 7, 1, 0},      {64, h, w, 128, 3, 3, 2, 1},
        {128, h2, w2, 128, 3, 3, 1, 1},         {128, h2, w2, 256, 3, 3, 2, 1},
        {256, h3, w3, 256, 3, 3, 1, 1},         {256, h3 + 2, w3 + 2, 256, 3, 3, 1, 0},
        {128, h2, w2, 128, 3, 3, 1, 1},         {64, h, w, 64, 3, 3, 1, 1},
        {64, h + 6, w + 6, 3, 7, 7, 1, 0},
        /* D */
        {3, h, w, 32, 3, 3, 1, 1},              {32, h, w, 64, 3, 3, 2, 1},
        {64, h2, w2, 128, 3, 3, 1, 1},          {128, h2, w2, 128, 3, 3, 2, 1},
        {128, h3, w3, 256, 3, 3, 1, 1},         {256, h3, w3, 256, 3, 3, 1, 1},
        {256, h3, w3, 1, 3, 3, 1, 1},
    };
    size_t m = gemm_ws_floats(threads);
    for (size_t i = 0; i < sizeof convs / sizeof convs[0]; i++) acc_max(&m, conv_train_ws_floats(&convs[i], threads));
    const deconv_dims de[] = {{256, h3, w3, 128, 3, 3, 2, 1, 1}, {128, h2, w2, 64, 3, 3, 2, 1, 1}};
    for (int i = 0; i < 2; i++) acc_max(&m, deconv_train_ws_floats(&de[i], threads));
    for (int l = 0; l < VGG_LAYERS; l++) {
        int dv = l < 2 ? 1 : l < 4 ? 2 : l < 8 ? 4 : 8;
        conv_dims d = {vgg_cin[l], h / dv, w / dv, vgg_cout[l], 3, 3, 1, 1};
        acc_max(&m, conv_train_ws_floats(&d, threads));
    }
    return m;
}

/* Lays out every activation and buffer; with ar->base NULL it only counts. */
static void layout(cg_trainer *t, arena *ar) {
    const int n = t->c.batch, h = t->c.height, w = t->c.width;
    const size_t feat = (size_t)n * 512 * (h / 8) * (w / 8);
    gen_acts_layout(&t->ga, ar, n, h, w);
    d_acts_layout(&t->da, ar, n, h, w, t->c.d_norm == CG_DNORM_BATCH ? D_NORM_BATCH : D_NORM_INSTANCE);
    if (t->has_vgg) {
        vgg_acts_layout(&t->va, ar, n, h, w);
        t->photo_feat = arena_take(ar, feat);
        t->dfeat = arena_take(ar, feat);
        if (t->c.style_weight != 0.f) {
            t->gram_c = arena_take(ar, (size_t)n * 512 * 512);
            t->gram_f = arena_take(ar, (size_t)512 * 512);
            t->dgram = arena_take(ar, (size_t)512 * 512);
        }
    }
    t->dfake = arena_take(ar, (size_t)n * 3 * h * w);
    t->dlogits = arena_take(ar, (size_t)n * (h / 4) * (w / 4));
    t->ctx.ws = arena_take(ar, ws_floats(n, h, w, cg_pool_threads(t->pool)));
}

cg_status cg_trainer_create(cg_trainer **out, const cg_train_config *c, const char *vgg_path) {
    if (!out || !c) return cg_fail(CG_ERR_ARG, "cg_trainer_create: null argument");
    *out = NULL;
    if (c->batch < 1 || c->height < 8 || c->width < 8 || c->height % 4 || c->width % 4 ||
        (double)c->batch * c->height * c->width > 64.0 * 1024 * 1024)
        return cg_fail(CG_ERR_ARG, "training images must be at least 8x8 with sides multiples of 4 (G and D halve them twice), "
                                   "and batch x pixels at most 64 M; got batch %d of %dx%d", c->batch, c->width, c->height);
    if (!(c->lr_g >= 0) || !(c->lr_d >= 0) || !(c->content_weight >= 0) || !(c->style_weight >= 0))
        return cg_fail(CG_ERR_ARG, "learning rates and loss weights must be non-negative numbers");
    cg_trainer *t = calloc(1, sizeof *t);
    if (!t) return cg_fail(CG_ERR_NOMEM, "out of memory");
    t->c = *c;
    cg_status st = CG_OK;
    if (vgg_path) {
        if ((st = vgg_weights_load(&t->vgg, vgg_path)) != CG_OK) goto fail;
        t->has_vgg = 1;
    }
    t->pool = cg_pool_create(c->threads > 0 ? c->threads : cg_cpu_count());
    if (!t->pool || param_set_alloc(&t->g, gen_tensors, GEN_NUM_TENSORS) ||
        param_set_alloc(&t->d, d_tensors, D_NUM_TENSORS)) {
        st = cg_fail(CG_ERR_NOMEM, "out of memory for the networks' parameters");
        goto fail;
    }
    t->ctx.pool = t->pool;
    t->ctx.comm_failed = &t->comm_failed;
    t->comm.processes = 1;
    t->d_backup = malloc(3 * t->d.count * sizeof(float));
    arena ar = {NULL, 0};
    layout(t, &ar);
    t->block = aligned_alloc(64, (ar.used * sizeof(float) + 63) / 64 * 64);
    if (!t->block || !t->d_backup) {
        st = cg_fail(CG_ERR_NOMEM, "out of memory: a step of batch %d at %dx%d needs %.2f GB of activations",
                     c->batch, c->width, c->height, ar.used * 4.0 / 1e9);
        goto fail;
    }
    ar = (arena){t->block, 0};
    layout(t, &ar);
    param_set_init(&t->g, c->seed);
    param_set_init(&t->d, c->seed ^ 0x5DEECE66Dull);
    gen_layers_point(&t->gp, t->g.params), gen_layers_point(&t->gg, t->g.grads);
    d_layers_point(&t->dp, t->d.params), d_layers_point(&t->dg, t->d.grads);
    *out = t;
    return CG_OK;
fail:
    cg_trainer_free(t);
    return st;
}

void cg_trainer_free(cg_trainer *t) {
    if (!t) return;
    if (t->has_vgg) vgg_weights_free(&t->vgg);
    cg_pool_free(t->pool);
    free(t->g.mem), free(t->d.mem), free(t->d_backup), free(t->block);
    free(t);
}

static param_set *set_of(cg_trainer *t, cg_train_tensors which) {
    return which == CG_NET_G || which == CG_GRAD_G ? &t->g : &t->d;
}

cg_status cg_trainer_load(cg_trainer *t, cg_train_tensors which, const char *path) {
    if (!t || !path || (which != CG_NET_G && which != CG_NET_D)) return cg_fail(CG_ERR_ARG, "cg_trainer_load: bad argument");
    param_set *s = set_of(t, which);
    /* read into the gradients' space first, so a bad file leaves the parameters as they were */
    cg_status st = st_load(path, s->info, s->ntensors, s->grads, 0, 0,
                           which == CG_NET_G ? "a CartoonGAN generator" : "a CartoonGAN discriminator");
    if (st != CG_OK) return st;
    const char *bad = non_finite(s, s->grads);
    if (bad) return cg_fail(CG_ERR_WEIGHTS, "%s: tensor %s holds NaN or infinite values", path, bad);
    memcpy(s->params, s->grads, s->count * sizeof(float));
    memset(s->grads, 0, s->count * sizeof(float));
    memset(s->m, 0, 2 * s->count * sizeof(float));
    s->t = 0;
    return CG_OK;
}

cg_status cg_trainer_save(const cg_trainer *t, cg_train_tensors which, const char *path) {
    if (!t || !path) return cg_fail(CG_ERR_ARG, "cg_trainer_save: null argument");
    const param_set *s = set_of((cg_trainer *)t, which);
    const float *data = which == CG_NET_G || which == CG_NET_D ? s->params : s->grads;
    const char *model = which == CG_NET_G ? "\"model\":\"cartoongan-generator\""
                        : which == CG_NET_D ? "\"model\":\"cartoongan-discriminator\""
                                            : "\"model\":\"gradients\"";
    return st_save(path, s->info, s->ntensors, data, 0, model);
}

const float *cg_trainer_generated(const cg_trainer *t) { return t ? t->ga.y : NULL; }

cg_status cg_trainer_generator(const cg_trainer *t, cg_model **out) {
    if (!t || !out) return cg_fail(CG_ERR_ARG, "cg_trainer_generator: null argument");
    return model_from_params(out, t->g.params);
}

cg_status cg_trainer_set_learning_rate(cg_trainer *t, cg_train_tensors which, float lr) {
    if (!t || (which != CG_NET_G && which != CG_NET_D) || !(lr >= 0))
        return cg_fail(CG_ERR_ARG, "cg_trainer_set_learning_rate: bad argument");
    if (which == CG_NET_G) t->c.lr_g = lr;
    else t->c.lr_d = lr;
    return CG_OK;
}

cg_status cg_trainer_restart_optimizer(cg_trainer *t, cg_train_tensors which) {
    if (!t || (which != CG_NET_G && which != CG_NET_D))
        return cg_fail(CG_ERR_ARG, "cg_trainer_restart_optimizer: bad argument");
    param_set *s = set_of(t, which);
    memset(s->m, 0, 2 * s->count * sizeof(float));
    s->t = 0;
    return CG_OK;
}

/* ---- checkpoints: six parts (G, its m and v, D, its m and v), one file ---- */

enum { CKPT_PARTS = 6 };

typedef struct {
    tensor_info *specs;
    char (*names)[48];
    int n;
} ckpt_layout;

static void ckpt_free(ckpt_layout *l) {
    free(l->specs), free(l->names);
}

static int ckpt_specs(ckpt_layout *l, const cg_trainer *t) {
    static const char *const prefix[CKPT_PARTS] = {"G.", "G.adam_m.", "G.adam_v.", "D.", "D.adam_m.", "D.adam_v."};
    l->n = 3 * (GEN_NUM_TENSORS + D_NUM_TENSORS);
    l->specs = malloc((size_t)l->n * sizeof *l->specs);
    l->names = malloc((size_t)l->n * sizeof *l->names);
    if (!l->specs || !l->names) return -1;
    int k = 0;
    for (int p = 0; p < CKPT_PARTS; p++) {
        const param_set *s = p < 3 ? &t->g : &t->d;
        for (int i = 0; i < s->ntensors; i++, k++) {
            l->specs[k] = s->info[i];
            snprintf(l->names[k], sizeof l->names[k], "%s%s", prefix[p], s->info[i].name);
            l->specs[k].name = l->names[k];
        }
    }
    return 0;
}

/* The part's floats: params, m or v of G or D. */
static float *ckpt_part(const cg_trainer *t, int p) {
    const param_set *s = p < 3 ? &t->g : &t->d;
    return p % 3 == 0 ? s->params : p % 3 == 1 ? s->m : s->v;
}

cg_status cg_trainer_save_checkpoint(const cg_trainer *t, const char *path, const char *metadata) {
    if (!t || !path) return cg_fail(CG_ERR_ARG, "cg_trainer_save_checkpoint: null argument");
    ckpt_layout l = {0};
    const size_t total = 3 * (t->g.count + t->d.count);
    float *buf = malloc(total * sizeof *buf);
    if (ckpt_specs(&l, t) || !buf) {
        ckpt_free(&l), free(buf);
        return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    }
    float *o = buf;
    for (int p = 0; p < CKPT_PARTS; p++) {
        size_t n = p < 3 ? t->g.count : t->d.count;
        memcpy(o, ckpt_part(t, p), n * sizeof *o);
        o += n;
    }
    char meta[4096];
    snprintf(meta, sizeof meta, "\"model\":\"cartoongan-checkpoint\",\"g_adam_t\":\"%ld\",\"d_adam_t\":\"%ld\"%s%s",
             t->g.t, t->d.t, metadata ? "," : "", metadata ? metadata : "");
    cg_status st = st_save(path, l.specs, l.n, buf, 0, meta);
    ckpt_free(&l), free(buf);
    return st;
}

static int meta_long(const char *path, const char *key, long *out) {
    char v[64], *end;
    if (st_read_metadata(path, key, v, sizeof v) != CG_OK) return -1;
    *out = strtol(v, &end, 10);
    return *end || end == v || *out < 0 ? -1 : 0;
}

cg_status cg_trainer_load_checkpoint(cg_trainer *t, const char *path) {
    if (!t || !path) return cg_fail(CG_ERR_ARG, "cg_trainer_load_checkpoint: null argument");
    char model[64];
    if (st_read_metadata(path, "model", model, sizeof model) != CG_OK || strcmp(model, "cartoongan-checkpoint") != 0)
        return cg_fail(CG_ERR_FORMAT, "%s: not a cartoongan training checkpoint", path);
    long gt, dt;
    if (meta_long(path, "g_adam_t", &gt) || meta_long(path, "d_adam_t", &dt))
        return cg_fail(CG_ERR_FORMAT, "%s: checkpoint metadata lacks the optimizers' step counts", path);
    ckpt_layout l = {0};
    const size_t total = 3 * (t->g.count + t->d.count);
    float *buf = malloc(total * sizeof *buf);
    if (ckpt_specs(&l, t) || !buf) {
        ckpt_free(&l), free(buf);
        return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    }
    /* into a buffer first (st_load checks every name, shape and value), so a bad file
     * changes nothing */
    cg_status st = st_load(path, l.specs, l.n, buf, 1, 0, "a cartoongan training checkpoint");
    if (st == CG_OK) {
        const float *o = buf;
        for (int p = 0; p < CKPT_PARTS; p++) {
            size_t n = p < 3 ? t->g.count : t->d.count;
            memcpy(ckpt_part(t, p), o, n * sizeof *o);
            o += n;
        }
        t->g.t = gt, t->d.t = dt;
    }
    ckpt_free(&l), free(buf);
    return st;
}

/* ---- the step ---- */

static double gan_loss(const cg_trainer *t, const float *logits, float target, size_t n) {
    return t->c.gan_loss == CG_GAN_BCE ? bce_logits_loss_forward(logits, target, n)
                                       : mse_loss_forward(logits, target, n);
}

static void gan_loss_backward(const cg_trainer *t, float *d, const float *logits, float target, size_t n) {
    if (t->c.gan_loss == CG_GAN_BCE) bce_logits_loss_backward(d, logits, target, n, 1.f);
    else mse_loss_backward(d, logits, target, n, 1.f);
}

/* One term of D's loss: D(x) against `target`, its gradients accumulated into D's. */
static double d_term(cg_trainer *t, const float *x, float target) {
    const size_t n = (size_t)t->c.batch * (t->c.height / 4) * (t->c.width / 4);
    d_forward(&t->da, &t->dp, x, &t->ctx);
    double loss = gan_loss(t, t->da.out, target, n);
    memset(t->dlogits, 0, n * sizeof(float));
    gan_loss_backward(t, t->dlogits, t->da.out, target, n);
    d_backward(&t->da, &t->dp, &t->dg, NULL, t->dlogits, &t->ctx);
    return loss;
}

/* The content (and, if `style`, style) loss of G's output, its gradient added into dfake. */
static void content_loss(cg_trainer *t, const float *photo, const float *cartoon, int style, cg_train_losses *L) {
    const int n = t->c.batch, h = t->c.height, w = t->c.width;
    const float *fake = t->ga.y;
    if (!t->has_vgg) { /* --vgg none: pixels */
        size_t cnt = (size_t)n * 3 * h * w;
        L->content = l1_loss_forward(fake, photo, cnt);
        l1_loss_backward(t->dfake, fake, photo, cnt, t->c.content_weight);
        return;
    }
    const size_t hw = (size_t)(h / 8) * (w / 8), feat = (size_t)n * 512 * hw;
    double t0 = now_s();
    vgg_forward(&t->va, &t->vgg, photo, &t->ctx);
    memcpy(t->photo_feat, t->va.feat, feat * sizeof(float));
    if (style) {
        vgg_forward(&t->va, &t->vgg, cartoon, &t->ctx);
        for (int i = 0; i < n; i++)
            gram_forward(t->gram_c + (size_t)i * 512 * 512, t->va.feat + (size_t)i * 512 * hw, 512, (int)hw, t->ctx.ws, t->pool);
    }
    vgg_forward(&t->va, &t->vgg, fake, &t->ctx);
    L->content = l1_loss_forward(t->va.feat, t->photo_feat, feat);
    memset(t->dfeat, 0, feat * sizeof(float));
    l1_loss_backward(t->dfeat, t->va.feat, t->photo_feat, feat, t->c.content_weight);
    if (style) {
        double s = 0;
        for (int i = 0; i < n; i++) {
            const float *f = t->va.feat + (size_t)i * 512 * hw;
            gram_forward(t->gram_f, f, 512, (int)hw, t->ctx.ws, t->pool);
            s += l1_loss_forward(t->gram_f, t->gram_c + (size_t)i * 512 * 512, 512 * 512) / n;
            memset(t->dgram, 0, 512 * 512 * sizeof(float));
            l1_loss_backward(t->dgram, t->gram_f, t->gram_c + (size_t)i * 512 * 512, 512 * 512, t->c.style_weight / n);
            gram_backward(t->dfeat + (size_t)i * 512 * hw, t->dgram, f, 512, (int)hw, t->ctx.ws, t->pool);
        }
        L->style = s;
    }
    lap(t, PROF_VGG_FWD, &t0);
    vgg_backward(&t->va, &t->vgg, t->dfake, t->dfeat, &t->ctx);
    lap(t, PROF_VGG_BWD, &t0);
}

/* Undoes D's update of this step (the step as a whole did not happen). */
static void restore_d(cg_trainer *t) {
    memcpy(t->d.params, t->d_backup, t->d.count * sizeof(float));
    memcpy(t->d.m, t->d_backup + t->d.count, 2 * t->d.count * sizeof(float));
    t->d.t--;
}

static cg_status comm_error(long step) {
    return cg_fail(CG_ERR_IO, "step %ld: summing across the processes failed; no parameter was changed", step);
}

cg_status cg_trainer_step(cg_trainer *t, cg_train_phase phase, const float *photo, const float *cartoon,
                          const float *smooth, cg_train_losses *losses) {
    if (!t || !photo || (phase != CG_PHASE_INIT && phase != CG_PHASE_GAN))
        return cg_fail(CG_ERR_ARG, "cg_trainer_step: bad argument");
    if (phase == CG_PHASE_GAN && (!cartoon || !smooth))
        return cg_fail(CG_ERR_ARG, "cg_trainer_step: the GAN phase needs cartoon and smoothed-cartoon images");
    const int n = t->c.batch, h = t->c.height, w = t->c.width;
    const long step = t->steps + 1;
    cg_train_losses L;
    L.content = L.style = L.g_adversarial = L.g_total = NAN;
    L.d_real = L.d_smooth = L.d_fake = L.d_total = NAN;
    if (losses) *losses = L;
    t->comm_failed = 0;
    double t0 = now_s();
    memset(t->g.grads, 0, t->g.count * sizeof(float));
    gen_forward(&t->ga, &t->gp, photo, &t->ctx);
    const float *fake = t->ga.y;
    lap(t, PROF_G_FWD, &t0);
    if (phase == CG_PHASE_GAN) {
        memset(t->d.grads, 0, t->d.count * sizeof(float));
        L.d_real = d_term(t, cartoon, 1.f);
        L.d_smooth = d_term(t, smooth, 0.f);
        L.d_fake = d_term(t, fake, 0.f);
        if (comm_on(t)) { /* the global batch's losses and D's mean gradient, before any decision */
            double dl[3] = {L.d_real, L.d_smooth, L.d_fake};
            comm_mean_doubles(t, dl, 3);
            comm_mean_floats(t, t->d.grads, t->d.count);
            if (t->comm_failed) return comm_error(step);
            L.d_real = dl[0], L.d_smooth = dl[1], L.d_fake = dl[2];
        }
        L.d_total = L.d_real + L.d_smooth + L.d_fake;
        if (losses) *losses = L;
        if (!isfinite(L.d_total)) return cg_fail(CG_ERR_DIVERGED, "step %ld: d_total_loss is %g; no parameter was changed", step, L.d_total);
        const char *bad = non_finite(&t->d, t->d.grads);
        if (bad) return cg_fail(CG_ERR_DIVERGED, "step %ld: D's gradient of %s is not finite; no parameter was changed", step, bad);
        memcpy(t->d_backup, t->d.params, t->d.count * sizeof(float));
        memcpy(t->d_backup + t->d.count, t->d.m, 2 * t->d.count * sizeof(float));
        lap(t, PROF_D_LOSS, &t0);
        adam_step(&t->d, t->c.lr_d);
        lap(t, PROF_ADAM, &t0);
    }
    memset(t->dfake, 0, (size_t)n * 3 * h * w * sizeof(float));
    const int style = phase == CG_PHASE_GAN && t->has_vgg && t->c.style_weight != 0.f;
    content_loss(t, photo, cartoon, style, &L);
    t0 = now_s();
    if (phase == CG_PHASE_GAN) {
        const size_t cnt = (size_t)n * (h / 4) * (w / 4);
        d_forward(&t->da, &t->dp, fake, &t->ctx); /* the updated D */
        L.g_adversarial = gan_loss(t, t->da.out, 1.f, cnt);
        memset(t->dlogits, 0, cnt * sizeof(float));
        gan_loss_backward(t, t->dlogits, t->da.out, 1.f, cnt);
        d_backward(&t->da, &t->dp, NULL, t->dfake, t->dlogits, &t->ctx);
        lap(t, PROF_D_FOR_G, &t0);
    }
    if (comm_on(t)) { /* G's losses over the global batch, so every process decides alike */
        double gl[3] = {L.content, style ? L.style : 0, phase == CG_PHASE_GAN ? L.g_adversarial : 0};
        comm_mean_doubles(t, gl, 3);
        L.content = gl[0];
        if (style) L.style = gl[1];
        if (phase == CG_PHASE_GAN) L.g_adversarial = gl[2];
    }
    L.g_total = t->c.content_weight * L.content;
    if (style) L.g_total += t->c.style_weight * L.style;
    if (phase == CG_PHASE_GAN) L.g_total += L.g_adversarial;
    if (losses) *losses = L;
    const char *bad = NULL, *what = "g_total_loss";
    if (isfinite(L.g_total) && !t->comm_failed) {
        gen_backward(&t->ga, &t->gp, &t->gg, photo, t->dfake, &t->ctx);
        if (comm_on(t)) comm_mean_floats(t, t->g.grads, t->g.count);
        if (!t->comm_failed) bad = non_finite(&t->g, t->g.grads);
        lap(t, PROF_G_BWD, &t0);
    }
    if (!isfinite(L.g_total) || bad || t->comm_failed) {
        if (phase == CG_PHASE_GAN) restore_d(t);
        if (t->comm_failed) return comm_error(step);
        if (bad) return cg_fail(CG_ERR_DIVERGED, "step %ld: G's gradient of %s is not finite; no parameter was changed", step, bad);
        return cg_fail(CG_ERR_DIVERGED, "step %ld: %s is %g; no parameter was changed", step, what, L.g_total);
    }
    adam_step(&t->g, t->c.lr_g);
    lap(t, PROF_ADAM, &t0);
    t->steps = step;
    return CG_OK;
}
