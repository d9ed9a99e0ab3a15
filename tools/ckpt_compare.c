/* ckpt_compare.c: how far apart two training checkpoints' G and D are, for
 * tests/test_dist_cli.sh (an MPI run against one process with the same global batch):
 *
 *     ckpt_compare A.safetensors B.safetensors [INIT.safetensors]
 *
 * prints, for G and D, "NET values N flipped F max M rel R": N values, F of them differing
 * by more than 1e-6 + 1e-4 |b| (a rounding difference stays far below; a parameter whose
 * Adam step changed sign, or different data, goes beyond), the largest difference M, and,
 * with INIT (the run's starting checkpoint), R = ||a - b|| / ||b - init||. Goes through
 * the public API: each checkpoint is loaded into a trainer and its networks saved raw. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cartoongan.h"

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

/* G's and D's parameters of a checkpoint, through a trainer (its shape does not matter). */
static int networks(const char *ckpt, const char *tmp, float *out[2], size_t n[2]) {
    cg_train_config c;
    cg_train_config_default(&c);
    c.batch = 1, c.height = c.width = 8, c.threads = 1;
    cg_trainer *t;
    if (cg_trainer_create(&t, &c, NULL) != CG_OK || cg_trainer_load_checkpoint(t, ckpt) != CG_OK) {
        fprintf(stderr, "ckpt_compare: %s\n", cg_last_error());
        cg_trainer_free(t);
        return -1;
    }
    for (int k = 0; k < 2; k++) {
        if (cg_trainer_save(t, k ? CG_NET_D : CG_NET_G, tmp) != CG_OK || !(out[k] = read_floats(tmp, &n[k]))) {
            fprintf(stderr, "ckpt_compare: %s: cannot write its networks to %s\n", ckpt, tmp);
            cg_trainer_free(t);
            return -1;
        }
    }
    unlink(tmp);
    cg_trainer_free(t);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: ckpt_compare A.safetensors B.safetensors [INIT.safetensors]\n");
        return 2;
    }
    char tmp[] = "/tmp/ckpt_compare.XXXXXX";
    int fd = mkstemp(tmp);
    if (fd < 0) return perror("mkstemp"), 1;
    close(fd);
    float *a[2], *b[2], *z[2] = {NULL, NULL};
    size_t na[2], nb[2], nz[2];
    if (networks(argv[1], tmp, a, na) || networks(argv[2], tmp, b, nb) || (argc == 4 && networks(argv[3], tmp, z, nz)))
        return unlink(tmp), 1;
    for (int k = 0; k < 2; k++) {
        size_t flipped = 0;
        double mx = 0, num = 0, den = 0;
        for (size_t i = 0; i < na[k]; i++) {
            double d = fabs((double)a[k][i] - b[k][i]);
            flipped += d > 1e-6 + 1e-4 * fabs(b[k][i]);
            if (d > mx) mx = d;
            num += d * d;
            if (z[k]) den += ((double)b[k][i] - z[k][i]) * ((double)b[k][i] - z[k][i]);
        }
        printf("%s values %zu flipped %zu max %.3g rel %.3g\n", k ? "D" : "G", na[k], flipped, mx,
               z[k] ? sqrt(num / den) : NAN);
        free(a[k]), free(b[k]), free(z[k]);
    }
    return 0;
}
