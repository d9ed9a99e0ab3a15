/* train_step.c: runs CartoonGAN training steps on one fixed batch and writes the first
 * step's losses and gradients and the parameters after the last step, so that anyone can
 * check the training engine against any framework (tools/train_reference.py does it for
 * PyTorch; doc/training-engine.md says what is computed). Built by `make` as
 * build/tools/train_step. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cartoongan.h"
#include "io/image.h"
#include "model/npy.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: train_step --phase init|gan --g G.safetensors [--d D.safetensors]\n"
            "                  --vgg VGG.safetensors|VGG.h5|none --photo P.npy [--cartoon C.npy --smooth S.npy]\n"
            "                  [options] --out DIR\n"
            "\n"
            "Runs --steps training steps of CartoonGAN on one batch and writes to DIR:\n"
            "losses.json (the first step's losses), grad_g.safetensors and, in the GAN phase,\n"
            "grad_d.safetensors (the first step's gradients), g.safetensors and, in the GAN\n"
            "phase, d.safetensors (the parameters after the last step).\n"
            "\n"
            "P.npy, C.npy, S.npy: float32 [N][3][H][W], BGR in [-1, 1] (G's input), H and W\n"
            "multiples of 4, the same shape in all three.\n"
            "\n"
            "options:\n"
            "  --phase init|gan        init: G against the content loss alone; gan: D, then G (required)\n"
            "  --g PATH                G's weights, e.g. weights/hayao.safetensors (required)\n"
            "  --d PATH                D's weights (default: the seeded initialisation)\n"
            "  --vgg PATH|none         VGG19 weights: torchvision's .safetensors or Keras's .h5;\n"
            "                          none: content loss on pixels (required)\n"
            "  --steps N               steps on the same batch (default 1)\n"
            "  --lr-g X                G's Adam learning rate (default 2e-4 in init, 8e-5 in gan)\n"
            "  --lr-d X                D's Adam learning rate (default 3e-5)\n"
            "  --content-weight W      content loss weight (default 10)\n"
            "  --style-weight W        style loss weight (default 0)\n"
            "  --gan-loss lsgan|bce    D's loss (default lsgan)\n"
            "  --d-norm batch|instance D's normalisation (default batch)\n"
            "  --seed N                initialisation seed of a fresh D (default 0)\n"
            "  --threads N             threads (default 0: one per CPU)\n"
            "  --out DIR               where to write (created if missing; required)\n");
}

static int fail(const char *msg) {
    fprintf(stderr, "train_step: %s\n", msg);
    return 1;
}

static int parse_float(const char *s, float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return -1;
    *out = (float)v;
    return 0;
}

/* Loads a batch and checks its shape against want (or sets want from the first one). */
static int load_batch(npy_array *a, const char *path, long want[4]) {
    if (npy_load(a, path, 0) != CG_OK) return fail(cg_last_error());
    char msg[512];
    if (a->ndim != 4 || a->shape[1] != 3) {
        snprintf(msg, sizeof msg, "%s: expected float32 [N][3][H][W] images, got %d dimensions%s", path, a->ndim,
                 a->ndim == 4 ? " with other than 3 channels" : "");
        return fail(msg);
    }
    if (a->shape[2] % 4 || a->shape[3] % 4 || a->shape[2] < 8 || a->shape[3] < 8) {
        snprintf(msg, sizeof msg, "%s: images of %ldx%ld; H and W must be multiples of 4, at least 8", path, a->shape[3],
                 a->shape[2]);
        return fail(msg);
    }
    if (want[0] == 0) {
        memcpy(want, a->shape, 4 * sizeof(long));
    } else if (memcmp(want, a->shape, 4 * sizeof(long)) != 0) {
        snprintf(msg, sizeof msg, "%s: shape [%ld][3][%ld][%ld] differs from the photos' [%ld][3][%ld][%ld]", path,
                 a->shape[0], a->shape[2], a->shape[3], want[0], want[2], want[3]);
        return fail(msg);
    }
    for (size_t i = 0; i < a->count; i++)
        if (!isfinite(a->data[i])) {
            snprintf(msg, sizeof msg, "%s: holds NaN or infinite values", path);
            return fail(msg);
        }
    return 0;
}

static int write_losses(const char *dir, const cg_train_losses *l) {
    const char *names[8] = {"content_loss", "style_loss", "g_adversarial_loss", "g_total_loss",
                            "d_real_loss", "d_smooth_loss", "d_fake_loss", "d_total_loss"};
    const double v[8] = {l->content, l->style, l->g_adversarial, l->g_total, l->d_real, l->d_smooth, l->d_fake, l->d_total};
    char buf[1024], path[4096];
    size_t o = 0;
    o += (size_t)snprintf(buf + o, sizeof buf - o, "{");
    for (int i = 0, first = 1; i < 8; i++) {
        if (isnan(v[i])) continue; /* does not apply */
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s\n  \"%s\": %.9g", first ? "" : ",", names[i], v[i]);
        first = 0;
    }
    o += (size_t)snprintf(buf + o, sizeof buf - o, "\n}\n");
    snprintf(path, sizeof path, "%s/losses.json", dir);
    if (cg_write_file_atomic(path, buf, o) != CG_OK) return fail(cg_last_error());
    return 0;
}

static int save(cg_trainer *t, cg_train_tensors which, const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (cg_trainer_save(t, which, path) != CG_OK) return fail(cg_last_error());
    return 0;
}

int main(int argc, char **argv) {
    const char *phase_s = NULL, *g = NULL, *d = NULL, *vgg = NULL, *photo = NULL, *cartoon = NULL, *smooth = NULL,
               *out = NULL, *gan_loss = "lsgan", *d_norm = "batch";
    long steps = 1;
    float lr_g = NAN;
    cg_train_config c;
    cg_train_config_default(&c);
    c.threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc || strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "train_step: %s '%s'\n", strncmp(a, "--", 2) ? "unexpected argument" : "missing value for", a);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        char *end;
        int bad = 0;
        if (!strcmp(a, "--phase")) phase_s = v;
        else if (!strcmp(a, "--g")) g = v;
        else if (!strcmp(a, "--d")) d = v;
        else if (!strcmp(a, "--vgg")) vgg = v;
        else if (!strcmp(a, "--photo")) photo = v;
        else if (!strcmp(a, "--cartoon")) cartoon = v;
        else if (!strcmp(a, "--smooth")) smooth = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--gan-loss")) gan_loss = v;
        else if (!strcmp(a, "--d-norm")) d_norm = v;
        else if (!strcmp(a, "--steps")) steps = strtol(v, &end, 10), bad = *end || end == v || steps < 1;
        else if (!strcmp(a, "--seed")) c.seed = strtoull(v, &end, 10), bad = *end || end == v;
        else if (!strcmp(a, "--threads")) c.threads = (int)strtol(v, &end, 10), bad = *end || end == v || c.threads < 0;
        else if (!strcmp(a, "--lr-g")) bad = parse_float(v, &lr_g);
        else if (!strcmp(a, "--lr-d")) bad = parse_float(v, &c.lr_d);
        else if (!strcmp(a, "--content-weight")) bad = parse_float(v, &c.content_weight);
        else if (!strcmp(a, "--style-weight")) bad = parse_float(v, &c.style_weight);
        else {
            fprintf(stderr, "train_step: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "train_step: bad value '%s' for %s\n", v, a);
            return 2;
        }
    }
    if (!phase_s || !g || !vgg || !photo || !out) {
        fprintf(stderr, "train_step: --phase, --g, --vgg, --photo and --out are required\n");
        usage(stderr);
        return 2;
    }
    int gan = !strcmp(phase_s, "gan");
    if (!gan && strcmp(phase_s, "init")) return fail("--phase must be init or gan");
    if (gan && (!cartoon || !smooth)) return fail("the gan phase needs --cartoon and --smooth");
    if (!strcmp(gan_loss, "bce")) c.gan_loss = CG_GAN_BCE;
    else if (strcmp(gan_loss, "lsgan")) return fail("--gan-loss must be lsgan or bce");
    if (!strcmp(d_norm, "instance")) c.d_norm = CG_DNORM_INSTANCE;
    else if (strcmp(d_norm, "batch")) return fail("--d-norm must be batch or instance");
    c.lr_g = isnan(lr_g) ? (gan ? 8e-5f : 2e-4f) : lr_g;

    int rc = 1;
    long shape[4] = {0};
    npy_array P = {0}, C = {0}, S = {0};
    cg_trainer *t = NULL;
    if (load_batch(&P, photo, shape)) goto done;
    if (gan && (load_batch(&C, cartoon, shape) || load_batch(&S, smooth, shape))) goto done;
    c.batch = (int)shape[0], c.height = (int)shape[2], c.width = (int)shape[3];
    if (cg_trainer_create(&t, &c, strcmp(vgg, "none") ? vgg : NULL) != CG_OK ||
        cg_trainer_load(t, CG_NET_G, g) != CG_OK || (d && cg_trainer_load(t, CG_NET_D, d) != CG_OK)) {
        fail(cg_last_error());
        goto done;
    }
    if (cg_mkdir_p(out) != CG_OK) {
        fail(cg_last_error());
        goto done;
    }
    for (long s = 0; s < steps; s++) {
        cg_train_losses l;
        if (cg_trainer_step(t, gan ? CG_PHASE_GAN : CG_PHASE_INIT, P.data, C.data, S.data, &l) != CG_OK) {
            fail(cg_last_error());
            goto done;
        }
        if (s == 0 && (write_losses(out, &l) || save(t, CG_GRAD_G, out, "grad_g.safetensors") ||
                       (gan && save(t, CG_GRAD_D, out, "grad_d.safetensors"))))
            goto done;
    }
    if (save(t, CG_NET_G, out, "g.safetensors") || (gan && save(t, CG_NET_D, out, "d.safetensors"))) goto done;
    rc = 0;
done:
    cg_trainer_free(t);
    npy_free(&P), npy_free(&C), npy_free(&S);
    return rc;
}
