/* train_bench.c: times the training engine's steps (bench/train_bench.sh runs it beside
 * PyTorch's bench/train_step_torch.py): one GAN step (G, D three times and once more after
 * its update, VGG twice, all backward passes, both Adam updates) and one init step, on a
 * batch of random images, after a warm-up step; prints the median of the timed steps and
 * the process's peak RSS.
 *
 *     train_bench --g G.safetensors --vgg VGG.safetensors [--batch 4] [--size 256]
 *                 [--threads 2] [--steps 3]
 *
 * A --vgg file that does not exist is first written with the test fixtures' deterministic
 * VGG19 (tests/train_fixtures.h): the speed does not depend on the weights' values. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cartoongan.h"
#include "train/nets.h"
#include "train_fixtures.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The timed steps' breakdown (trainer_profile), per step, on stderr. */
static void print_profile(const char *phase, const double *before, const double *after, int steps) {
    double total = 0;
    for (int i = 0; i < PROF_N; i++) total += after[i] - before[i];
    fprintf(stderr, "%s step, where the time goes (mean of %d):\n", phase, steps);
    for (int i = 0; i < PROF_N; i++)
        if (after[i] > before[i])
            fprintf(stderr, "  %-36s %6.3f s  %4.1f %%\n", trainer_profile_names[i], (after[i] - before[i]) / steps,
                    100 * (after[i] - before[i]) / total);
}

static double median_step(cg_trainer *t, cg_train_phase ph, const float *p, const float *c, const float *s, int steps) {
    double times[64], before[PROF_N];
    if (cg_trainer_step(t, ph, p, c, s, NULL) != CG_OK) return -1; /* warm-up */
    memcpy(before, trainer_profile(t), sizeof before);
    for (int i = 0; i < steps; i++) {
        double t0 = now();
        if (cg_trainer_step(t, ph, p, c, s, NULL) != CG_OK) return -1;
        times[i] = now() - t0;
    }
    print_profile(ph == CG_PHASE_GAN ? "GAN" : "init", before, trainer_profile(t), steps);
    qsort(times, (size_t)steps, sizeof times[0], cmp);
    return times[steps / 2];
}

int main(int argc, char **argv) {
    const char *g = NULL, *vgg = NULL;
    int batch = 4, size = 256, threads = 2, steps = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--g")) g = argv[i + 1];
        else if (!strcmp(argv[i], "--vgg")) vgg = argv[i + 1];
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--size")) size = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "train_bench: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!g || !vgg || steps < 1 || steps > 64) {
        fprintf(stderr, "usage: train_bench --g G.safetensors --vgg VGG [--batch N] [--size S] [--threads N] [--steps N<=64]\n");
        return 2;
    }
    if (access(vgg, R_OK) != 0 && write_vgg_safetensors(vgg) != 0) {
        fprintf(stderr, "train_bench: cannot write %s: %s\n", vgg, cg_last_error());
        return 1;
    }
    cg_train_config c;
    cg_train_config_default(&c);
    c.batch = batch, c.height = c.width = size, c.threads = threads;
    cg_trainer *t;
    if (cg_trainer_create(&t, &c, vgg) != CG_OK || cg_trainer_load(t, CG_NET_G, g) != CG_OK) {
        fprintf(stderr, "train_bench: %s\n", cg_last_error());
        return 1;
    }
    size_t n = (size_t)batch * 3 * size * size;
    float *img = malloc(3 * n * sizeof(float));
    if (!img) return 1;
    unsigned s = 1;
    for (size_t i = 0; i < 3 * n; i++) s = s * 1664525u + 1013904223u, img[i] = (float)(s >> 8) / 8388608.f - 1.f;
    double gan = median_step(t, CG_PHASE_GAN, img, img + n, img + 2 * n, steps);
    double init = median_step(t, CG_PHASE_INIT, img, NULL, NULL, steps);
    if (gan < 0 || init < 0) {
        fprintf(stderr, "train_bench: %s\n", cg_last_error());
        return 1;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("cartoongan kernel=%s gan_step_s=%.3f init_step_s=%.3f peak_rss_mb=%.0f\n", cg_kernel_name(), gan, init,
           ru.ru_maxrss / 1024.0);
    cg_trainer_free(t);
    free(img);
    return 0;
}
