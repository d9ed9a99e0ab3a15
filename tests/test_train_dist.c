/* test_train_dist.c: data-parallel training through the library's hook
 * (cg_trainer_set_comm), without MPI: K threads stand for K processes, each with its own
 * trainer stepping on its slice of a global batch, and the sums across "processes" go
 * through a barrier-synchronised exchange in memory (every thread adds the K buffers in
 * rank order, so all get the same bits, as MPI_Allreduce gives).
 *
 * Checked step by step against one trainer with the whole global batch started from the
 * same state (the data-parallel run's checkpoint before the step): every loss, G's and
 * D's gradients, and the parameters after the step; with batch norm and instance norm in
 * D, and a per-process batch of 1 (batch norm's statistics then come from the others).
 * The "processes" must end bit for bit equal. A control shows that the comparison can
 * fail: one process's trainer on its own slice, without the sums, from the same state.
 * `mpirun` itself is tested by tests/test_dist_cli.sh. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>

#include "cartoongan.h"
#include "test.h"
#include "train_fixtures.h"

enum { SIZE = 16, STEPS_INIT = 1, STEPS_GAN = 2, STEPS = STEPS_INIT + STEPS_GAN, MAX_K = 3 };
#define LR 2e-4f

/* Tolerances. The two sides add the same terms in other orders (per process, then across
 * processes), so they agree to rounding: measured, losses within 1.3e-6 (relative), G's
 * gradient within 2.2e-5 and D's within 7.2e-6 (relative, L2; G's goes back through 21
 * instance norms with eps 1e-9). The control is at about 0.5 to 1. Adam's first steps
 * move each parameter by about +-LR whatever its gradient's size, so a gradient within
 * rounding of zero can flip its parameter's step: measured, at most 0.35 % of the values
 * differ by more than 1e-6 after a step, none by more than 2 LR. */
#define LOSS_TOL 1e-5
#define GRAD_TOL 1e-4
#define FLIP_FRACTION 0.01
#define FLIP_MAX (3 * LR)

static char dir[256], vgg_path[512];

/* ---- K "processes" as threads ---- */

typedef struct {
    int k;
    pthread_barrier_t bar;
    void *slot[MAX_K];
} exchange;

typedef struct {
    exchange *x;
    int rank;
} member;

static int sum_floats(void *user, float *buf, size_t n) {
    member *m = user;
    exchange *x = m->x;
    float *tmp = malloc(n * sizeof *tmp);
    if (!tmp) return -1; /* the others would wait forever: fine for a test that then fails */
    x->slot[m->rank] = buf;
    pthread_barrier_wait(&x->bar);
    for (size_t i = 0; i < n; i++) {
        float acc = ((float *)x->slot[0])[i];
        for (int r = 1; r < x->k; r++) acc += ((float *)x->slot[r])[i];
        tmp[i] = acc;
    }
    pthread_barrier_wait(&x->bar); /* everyone has read every buffer: now overwrite */
    memcpy(buf, tmp, n * sizeof *tmp);
    free(tmp);
    return 0;
}

static int sum_doubles(void *user, double *buf, size_t n) {
    member *m = user;
    exchange *x = m->x;
    double tmp[4096];
    if (n > 4096) return -1;
    x->slot[m->rank] = buf;
    pthread_barrier_wait(&x->bar);
    for (size_t i = 0; i < n; i++) {
        double acc = ((double *)x->slot[0])[i];
        for (int r = 1; r < x->k; r++) acc += ((double *)x->slot[r])[i];
        tmp[i] = acc;
    }
    pthread_barrier_wait(&x->bar);
    memcpy(buf, tmp, n * sizeof *tmp);
    return 0;
}

static int broadcast(void *user, void *buf, size_t bytes) {
    member *m = user;
    exchange *x = m->x;
    x->slot[m->rank] = buf;
    pthread_barrier_wait(&x->bar);
    if (m->rank) memcpy(buf, x->slot[0], bytes);
    pthread_barrier_wait(&x->bar);
    return 0;
}

/* ---- one trainer's run ---- */

typedef enum {
    ROLE_PROCESS, /* one of K, batch B, summing across the others */
    ROLE_SINGLE,  /* alone, batch K B, each step from the processes' state before it */
    ROLE_CONTROL  /* alone, batch B (process 0's slice), each step from the same state */
} role;

typedef struct {
    cg_d_norm norm;
    cg_gan_loss gan;
    int k, batch; /* processes and per-process batch */
} scenario;

typedef struct {
    const scenario *sc;
    role role;
    int rank;
    member m;
    const float *photo, *cartoon, *smooth; /* the global batches of all steps */
    cg_train_losses losses[STEPS];
    int ok;
} runner;

static size_t image_floats(void) { return (size_t)3 * SIZE * SIZE; }

static const char *const role_name[] = {"process", "single", "control"};

/* dir/WHAT_ROLE_RANK_STEP.safetensors */
static void file(char *path, size_t n, const char *what, role ro, int rank, int step) {
    snprintf(path, n, "%s/%s_%s_%d_%d.safetensors", dir, what, role_name[ro], rank, step);
}

static void *run_trainer(void *arg) {
    runner *r = arg;
    const scenario *sc = r->sc;
    const int global = sc->k * sc->batch;
    cg_train_config c;
    cg_train_config_default(&c);
    c.batch = r->role == ROLE_SINGLE ? global : sc->batch, c.height = c.width = SIZE, c.threads = 1, c.seed = 7;
    c.d_norm = sc->norm, c.gan_loss = sc->gan, c.lr_g = c.lr_d = LR;
    cg_trainer *t;
    if (cg_trainer_create(&t, &c, vgg_path) != CG_OK) {
        fprintf(stderr, "  cg_trainer_create: %s\n", cg_last_error());
        return NULL;
    }
    if (r->role == ROLE_PROCESS) {
        cg_train_comm comm = {sc->k, sum_floats, sum_doubles, broadcast, &r->m};
        if (cg_trainer_set_comm(t, &comm) != CG_OK || cg_trainer_sync(t) != CG_OK) goto out;
    }
    const size_t off = (size_t)r->rank * sc->batch * image_floats();
    char path[600];
    for (int s = 0; s < STEPS; s++) {
        const size_t base = (size_t)s * global * image_floats() + off;
        file(path, sizeof path, "state", ROLE_PROCESS, 0, s); /* what every step starts from */
        if (r->role == ROLE_PROCESS && r->rank == 0 && cg_trainer_save_checkpoint(t, path, NULL) != CG_OK) goto out;
        if (r->role != ROLE_PROCESS && cg_trainer_load_checkpoint(t, path) != CG_OK) goto out;
        cg_train_phase ph = s < STEPS_INIT ? CG_PHASE_INIT : CG_PHASE_GAN;
        if (cg_trainer_step(t, ph, r->photo + base, r->cartoon + base, r->smooth + base, &r->losses[s]) != CG_OK) {
            fprintf(stderr, "  %s %d, step %d: %s\n", role_name[r->role], r->rank, s, cg_last_error());
            goto out;
        }
        if (r->role == ROLE_PROCESS && r->rank > 0 && s + 1 < STEPS) continue;
        /* the gradients, and the parameters after the step (the last step's of every process) */
        file(path, sizeof path, "grad_g", r->role, r->rank, s);
        if (cg_trainer_save(t, CG_GRAD_G, path) != CG_OK) goto out;
        file(path, sizeof path, "grad_d", r->role, r->rank, s);
        if (cg_trainer_save(t, CG_GRAD_D, path) != CG_OK) goto out;
        file(path, sizeof path, "g", r->role, r->rank, s);
        if (cg_trainer_save(t, CG_NET_G, path) != CG_OK) goto out;
        file(path, sizeof path, "d", r->role, r->rank, s);
        if (cg_trainer_save(t, CG_NET_D, path) != CG_OK) goto out;
    }
    r->ok = 1;
out:
    if (!r->ok && *cg_last_error()) fprintf(stderr, "  %s %d: %s\n", role_name[r->role], r->rank, cg_last_error());
    cg_trainer_free(t);
    return NULL;
}

/* ---- comparing ---- */

static float *read_floats(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint64_t hl;
    float *v = NULL;
    if (fread(&hl, 8, 1, f) == 1 && fseek(f, 0, SEEK_END) == 0) {
        long end = ftell(f);
        size_t bytes = (size_t)end - 8 - hl;
        *n = bytes / 4;
        v = malloc(bytes ? bytes : 1);
        if (v && (fseek(f, (long)(8 + hl), SEEK_SET) != 0 || fread(v, 4, *n, f) != *n)) free(v), v = NULL;
    }
    fclose(f);
    return v;
}

/* ||a - b|| / ||b|| over the files' tensors (both list them in the same order). */
static double rel_error(const char *a, const char *b) {
    size_t na, nb;
    float *x = read_floats(a, &na), *y = read_floats(b, &nb);
    double d = INFINITY;
    if (x && y && na == nb) {
        double num = 0, den = 0;
        for (size_t i = 0; i < na; i++) {
            num += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
            den += (double)y[i] * y[i];
        }
        d = den > 0 ? sqrt(num / den) : sqrt(num);
    }
    free(x), free(y);
    return d;
}

/* The fraction of values differing by more than 1e-6, and the largest difference. */
static void flips(const char *a, const char *b, double *frac, double *mx) {
    size_t na, nb, n = 0;
    float *x = read_floats(a, &na), *y = read_floats(b, &nb);
    *frac = 1, *mx = INFINITY;
    if (x && y && na == nb) {
        *mx = 0;
        for (size_t i = 0; i < na; i++) {
            double d = fabs((double)x[i] - y[i]);
            n += d > 1e-6;
            if (d > *mx) *mx = d;
        }
        *frac = (double)n / (double)na;
    }
    free(x), free(y);
}

static int same_bytes(const char *a, const char *b) {
    size_t na, nb;
    float *x = read_floats(a, &na), *y = read_floats(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na * 4) == 0;
    free(x), free(y);
    return same;
}

static double loss_at(const cg_train_losses *l, int i) {
    const double v[8] = {l->content, l->style, l->g_adversarial, l->g_total, l->d_real, l->d_smooth, l->d_fake, l->d_total};
    return v[i];
}

static void check_scenario(const scenario *sc, const char *label) {
    const int global = sc->k * sc->batch;
    const size_t nimg = (size_t)STEPS * global * image_floats();
    float *p = malloc(nimg * sizeof *p), *c = malloc(nimg * sizeof *c), *s = malloc(nimg * sizeof *s);
    if (!p || !c || !s) {
        CHECK(0, "out of memory");
        free(p), free(c), free(s);
        return;
    }
    fill_hash(p, nimg, 11, 1.0), fill_hash(c, nimg, 12, 1.0), fill_hash(s, nimg, 13, 1.0);

    /* the K processes, as threads */
    exchange x = {.k = sc->k};
    pthread_barrier_init(&x.bar, NULL, (unsigned)sc->k);
    runner proc[MAX_K];
    pthread_t th[MAX_K];
    for (int r = 0; r < sc->k; r++) {
        proc[r] = (runner){.sc = sc, .role = ROLE_PROCESS, .rank = r, .m = {&x, r}, .photo = p, .cartoon = c, .smooth = s};
        pthread_create(&th[r], NULL, run_trainer, &proc[r]);
    }
    for (int r = 0; r < sc->k; r++) pthread_join(th[r], NULL);
    pthread_barrier_destroy(&x.bar);
    runner one = {.sc = sc, .role = ROLE_SINGLE, .photo = p, .cartoon = c, .smooth = s};
    runner ctl = {.sc = sc, .role = ROLE_CONTROL, .photo = p, .cartoon = c, .smooth = s};
    run_trainer(&one);
    run_trainer(&ctl);
    for (int r = 0; r < sc->k; r++) CHECK(proc[r].ok, "%s: process %d failed", label, r);
    CHECK(one.ok && ctl.ok, "%s: the single trainer or the control failed", label);
    if (!one.ok || !ctl.ok || !proc[0].ok) goto out;

    double worst_loss = 0, worst[2] = {0}, control[2] = {INFINITY, INFINITY}, worst_frac = 0, worst_max = 0;
    char a[600], b[600];
    for (int st = 0; st < STEPS; st++) {
        for (int i = 0; i < 8; i++) {
            double u = loss_at(&proc[0].losses[st], i), v = loss_at(&one.losses[st], i);
            if (isnan(v)) {
                CHECK(isnan(u), "%s: step %d loss %d is %g, the single trainer has none", label, st, i, u);
                continue;
            }
            double rel = fabs(u - v) / fmax(fabs(v), 1e-6);
            if (rel > worst_loss) worst_loss = rel;
            CHECK(rel <= LOSS_TOL, "%s: step %d loss %d: %.9g against %.9g (relative %.2g)", label, st, i, u, v, rel);
        }
        static const char *const grads[2] = {"grad_g", "grad_d"};
        for (int n = 0; n < 2; n++) {
            if (n == 1 && st < STEPS_INIT) continue; /* D takes no step in the init phase */
            file(a, sizeof a, grads[n], ROLE_PROCESS, 0, st), file(b, sizeof b, grads[n], ROLE_SINGLE, 0, st);
            double e = rel_error(a, b);
            CHECK(e <= GRAD_TOL, "%s: step %d: %s differs from the single trainer's by %.3g", label, st, grads[n], e);
            if (e > worst[n]) worst[n] = e;
            file(a, sizeof a, grads[n], ROLE_CONTROL, 0, st);
            e = rel_error(a, b);
            if (e < control[n]) control[n] = e;
        }
        static const char *const nets[2] = {"g", "d"};
        for (int n = 0; n < 2; n++) {
            double frac, mx;
            file(a, sizeof a, nets[n], ROLE_PROCESS, 0, st), file(b, sizeof b, nets[n], ROLE_SINGLE, 0, st);
            flips(a, b, &frac, &mx);
            CHECK(frac <= FLIP_FRACTION && mx <= FLIP_MAX, "%s: step %d: %.3g %% of %s's values differ, by up to %.3g",
                  label, st, 100 * frac, nets[n], mx);
            if (frac > worst_frac) worst_frac = frac;
            if (mx > worst_max) worst_max = mx;
        }
    }
    CHECK(control[0] > 100 * GRAD_TOL && control[1] > 100 * GRAD_TOL, "%s: the control is too close (G %.3g, D %.3g)",
          label, control[0], control[1]);
    for (int r = 1; r < sc->k; r++) {
        const char *const nets[2] = {"g", "d"};
        for (int n = 0; n < 2; n++) {
            file(a, sizeof a, nets[n], ROLE_PROCESS, r, STEPS - 1), file(b, sizeof b, nets[n], ROLE_PROCESS, 0, STEPS - 1);
            CHECK(same_bytes(a, b), "%s: process %d's %s differs from process 0's", label, r, nets[n]);
        }
    }
    printf("  %s: losses within %.2g, gradients G %.2g D %.2g (control %.2g, %.2g), parameters: %.2g %% "
           "differ, by up to %.2g\n",
           label, worst_loss, worst[0], worst[1], control[0], control[1], 100 * worst_frac, worst_max);
out:
    free(p), free(c), free(s);
}

/* Three processes of one image each: batch norm's statistics of each come mostly from the
 * others' images. */
static void test_batch_norm_three_of_one(void) {
    scenario sc = {CG_DNORM_BATCH, CG_GAN_LSGAN, 3, 1};
    check_scenario(&sc, "3 x 1, batch norm, lsgan");
}

static void test_instance_norm_two_of_two(void) {
    scenario sc = {CG_DNORM_INSTANCE, CG_GAN_BCE, 2, 2};
    check_scenario(&sc, "2 x 2, instance norm, bce");
}

static void test_bad_comm(void) {
    cg_train_config c;
    cg_train_config_default(&c);
    c.batch = 1, c.height = c.width = SIZE, c.threads = 1;
    cg_trainer *t;
    CHECK(cg_trainer_create(&t, &c, NULL) == CG_OK, "%s", cg_last_error());
    cg_train_comm comm = {2, sum_floats, NULL, broadcast, NULL};
    CHECK(cg_trainer_set_comm(t, &comm) == CG_ERR_ARG, "a missing callback was taken");
    CHECK(cg_trainer_set_comm(t, NULL) == CG_OK, "alone again");
    CHECK(cg_trainer_sync(t) == CG_OK, "sync alone is a no-op");
    cg_trainer_free(t);
}

/* A sum that fails: the step fails with CG_ERR_IO and changes nothing. */
static int failing_sum(void *user, double *buf, size_t n) {
    (void)user, (void)buf, (void)n;
    return -1;
}

static int identity_floats(void *user, float *buf, size_t n) {
    (void)user, (void)buf, (void)n;
    return 0;
}

static int identity_bcast(void *user, void *buf, size_t n) {
    (void)user, (void)buf, (void)n;
    return 0;
}

static void test_failed_sum(void) {
    cg_train_config c;
    cg_train_config_default(&c);
    c.batch = 1, c.height = c.width = SIZE, c.threads = 1;
    cg_trainer *t;
    CHECK(cg_trainer_create(&t, &c, NULL) == CG_OK, "%s", cg_last_error());
    cg_train_comm comm = {2, identity_floats, failing_sum, identity_bcast, NULL};
    CHECK(cg_trainer_set_comm(t, &comm) == CG_OK, "%s", cg_last_error());
    float *img = calloc(image_floats(), sizeof(float));
    char before[600], after[600];
    snprintf(before, sizeof before, "%s/before.safetensors", dir), snprintf(after, sizeof after, "%s/after.safetensors", dir);
    CHECK(cg_trainer_save(t, CG_NET_D, before) == CG_OK, "%s", cg_last_error());
    CHECK(cg_trainer_step(t, CG_PHASE_GAN, img, img, img, NULL) == CG_ERR_IO, "the step did not fail");
    CHECK(strstr(cg_last_error(), "summing across the processes failed") != NULL, "message: %s", cg_last_error());
    CHECK(cg_trainer_save(t, CG_NET_D, after) == CG_OK, "%s", cg_last_error());
    CHECK(same_bytes(before, after), "D changed in a failed step");
    free(img);
    cg_trainer_free(t);
}

int main(void) {
    /* about 2 GB of checkpoints and gradients go through files: in memory when possible */
    snprintf(dir, sizeof dir, "/dev/shm/test_train_dist.XXXXXX");
    if (!mkdtemp(dir) && test_make_dir(dir, sizeof dir, "test_train_dist") != 0) return 1;
    snprintf(vgg_path, sizeof vgg_path, "%s/vgg.safetensors", dir);
    if (write_vgg_safetensors(vgg_path) != 0) {
        fprintf(stderr, "cannot write the stand-in VGG19\n");
        return 1;
    }
    RUN(test_batch_norm_three_of_one);
    RUN(test_instance_norm_two_of_two);
    RUN(test_bad_comm);
    RUN(test_failed_sum);
    test_remove_dir(dir);
    return TEST_SUMMARY("test_train_dist");
}
