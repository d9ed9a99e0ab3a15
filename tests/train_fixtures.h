/* train_fixtures.h: the training tests' deterministic inputs, written exactly as
 * doc/training-engine.md ("Parity fixtures") defines them, so that the C tests and
 * tools/make_train_fixtures.py (PyTorch) build the same large tensors (VGG19, D) from one
 * formula instead of committing them: splitmix64 / hash_v, the VGG19 as torchvision
 * .safetensors and as Keras .h5, D's 20 tensors, and the summaries the fixtures compare.
 * Header-only (test programs are single files); every value is computed in double and then
 * cast to float, as the doc says. */
#ifndef CG_TESTS_TRAIN_FIXTURES_H
#define CG_TESTS_TRAIN_FIXTURES_H

#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/safetensors.h"
#include "train/nets.h"
#include "train/vgg_weights.h"

/* ---- deterministic values ---- */

static inline uint64_t splitmix64(uint64_t x) {
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* in (0, 1) */
static inline double hash_u(uint64_t seed, uint64_t i) {
    return ((double)(splitmix64((seed << 32) + i) >> 40) + 0.5) / 16777216.0;
}

/* in (-1, 1) */
static inline double hash_v(uint64_t seed, uint64_t i) { return 2 * hash_u(seed, i) - 1; }

/* dst[i] = (float)(hash_v(seed, i) * a), i = 0..count-1. */
static inline void fill_hash(float *dst, size_t count, uint64_t seed, double a) {
    for (size_t i = 0; i < count; i++) dst[i] = (float)(hash_v(seed, i) * a);
}

/* ---- VGG19 (conv1_1 .. conv4_4) ---- */

/* Values in vgg_weights.params's layout: layer l's weight [out][in][3][3] (seed 2000 + l,
 * a = sqrt(6 / (in * 9))) then its bias (seed 2100 + l, a = 0.05). */
static inline size_t fixture_vgg_count(void) {
    size_t n = 0;
    for (int l = 0; l < VGG_LAYERS; l++) n += (size_t)vgg_cout[l] * vgg_cin[l] * 9 + (size_t)vgg_cout[l];
    return n;
}

static inline float *fixture_vgg_values(void) {
    float *p = malloc(fixture_vgg_count() * sizeof *p), *q = p;
    for (int l = 0; p && l < VGG_LAYERS; l++) {
        size_t nw = (size_t)vgg_cout[l] * vgg_cin[l] * 9;
        fill_hash(q, nw, 2000 + (uint64_t)l, sqrt(6.0 / (vgg_cin[l] * 9)));
        fill_hash(q + nw, (size_t)vgg_cout[l], 2100 + (uint64_t)l, 0.05);
        q += nw + (size_t)vgg_cout[l];
    }
    return p;
}

static const int fixture_vgg_tv_index[VGG_LAYERS] = {0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25};
static const char *const fixture_vgg_keras[VGG_LAYERS] = {
    "block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2",
    "block3_conv1", "block3_conv2", "block3_conv3", "block3_conv4",
    "block4_conv1", "block4_conv2", "block4_conv3", "block4_conv4",
};

/* torchvision's names and shapes, in the params layout's order (names: [24][32] storage). */
static inline void fixture_vgg_specs(tensor_info *specs, char (*names)[32]) {
    for (int l = 0; l < VGG_LAYERS; l++) {
        snprintf(names[2 * l], 32, "features.%d.weight", fixture_vgg_tv_index[l]);
        snprintf(names[2 * l + 1], 32, "features.%d.bias", fixture_vgg_tv_index[l]);
        specs[2 * l] = (tensor_info){names[2 * l], 4, {vgg_cout[l], vgg_cin[l], 3, 3}};
        specs[2 * l + 1] = (tensor_info){names[2 * l + 1], 1, {vgg_cout[l], 0, 0, 0}};
    }
}

/* The VGG as torchvision keys it: features.N.weight [out][in][3][3], features.N.bias. 0 on
 * success, -1 (with a message on stderr) on failure. */
static inline int write_vgg_safetensors(const char *path) {
    tensor_info specs[2 * VGG_LAYERS];
    char names[2 * VGG_LAYERS][32];
    fixture_vgg_specs(specs, names);
    float *v = fixture_vgg_values();
    cg_status st = v ? st_save(path, specs, 2 * VGG_LAYERS, v, 0, "\"model\":\"vgg19-fixture\"") : CG_ERR_NOMEM;
    free(v);
    if (st != CG_OK) fprintf(stderr, "write_vgg_safetensors: %s\n", cg_last_error());
    return st == CG_OK ? 0 : -1;
}

/* HDF5 helpers: a 1-D attribute of fixed-length, null-padded strings (as h5py writes
 * numpy byte strings), and a float32 dataset (intermediate groups created, as for newer
 * Keras's "block1_conv1/kernel:0" names). 0 or -1. */
static inline int fixture_h5_strings(hid_t loc, const char *attr, const char *const *s, int n) {
    size_t len = 1;
    for (int i = 0; i < n; i++) if (strlen(s[i]) > len) len = strlen(s[i]);
    char *buf = calloc((size_t)n * len + 1, 1);
    hsize_t dim = (hsize_t)n;
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate_simple(1, &dim, NULL), a = -1;
    int ok = buf && t >= 0 && sp >= 0 && H5Tset_size(t, len) >= 0 && H5Tset_strpad(t, H5T_STR_NULLPAD) >= 0;
    for (int i = 0; ok && i < n; i++) memcpy(buf + (size_t)i * len, s[i], strlen(s[i]));
    ok = ok && (a = H5Acreate2(loc, attr, t, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0 && H5Awrite(a, t, buf) >= 0;
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    free(buf);
    return ok ? 0 : -1;
}

static inline int fixture_h5_f32(hid_t loc, const char *name, const float *data, const hsize_t *dims, int nd) {
    hid_t sp = H5Screate_simple(nd, dims, NULL), lcpl = H5Pcreate(H5P_LINK_CREATE), d = -1;
    int ok = sp >= 0 && lcpl >= 0 && H5Pset_create_intermediate_group(lcpl, 1) >= 0 &&
             (d = H5Dcreate2(loc, name, H5T_IEEE_F32LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
             H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    if (d >= 0) H5Dclose(d);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (sp >= 0) H5Sclose(sp);
    return ok ? 0 : -1;
}

/* Keras layouts the loader must read: the real file's ("block1_conv1_W_1:0" datasets in
 * the group, listed by weight_names), newer Keras's ("block1_conv1/kernel:0", a subgroup),
 * and no weight_names at all (the loader then takes the group's 4-D and 1-D datasets). */
enum { FIXTURE_H5_REAL, FIXTURE_H5_NEW_NAMES, FIXTURE_H5_NO_NAMES };

static inline int fixture_write_vgg_h5_layout(const char *path, int layout) {
    float *v = fixture_vgg_values(), *tmp = malloc((size_t)512 * 512 * 9 * sizeof *tmp);
    hid_t f = v && tmp ? H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int ok = f >= 0;
    /* the layers of the real notop file up to block4_pool, pools and input included */
    const char *layers[18];
    int nl = 0, pool_after[VGG_LAYERS] = {[1] = 1, [3] = 1, [7] = 1, [11] = 1};
    layers[nl++] = "input_1";
    for (int l = 0; l < VGG_LAYERS; l++) {
        layers[nl++] = fixture_vgg_keras[l];
        if (pool_after[l]) layers[nl++] = l == 1 ? "block1_pool" : l == 3 ? "block2_pool" : l == 7 ? "block3_pool" : "block4_pool";
    }
    const char *backend = "tensorflow", *version = "2.0.8";
    ok = ok && fixture_h5_strings(f, "layer_names", layers, nl) == 0;
    /* scalar string attributes as h5py writes them: a 1-element array is close enough */
    ok = ok && fixture_h5_strings(f, "backend", &backend, 1) == 0 && fixture_h5_strings(f, "keras_version", &version, 1) == 0;
    const float *p = v;
    for (int i = 0, l = 0; ok && i < nl; i++) {
        hid_t g = H5Gcreate2(f, layers[i], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        ok = g >= 0;
        if (ok && (l == VGG_LAYERS || strcmp(layers[i], fixture_vgg_keras[l]) != 0)) {
            /* a layer without weights: Keras writes an empty list, h5py an empty float64 array */
            hsize_t zero = 0;
            hid_t sp = H5Screate_simple(1, &zero, NULL), a = -1;
            ok = layout == FIXTURE_H5_NO_NAMES ||
                 (sp >= 0 && (a = H5Acreate2(g, "weight_names", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0);
            if (a >= 0) H5Aclose(a);
            if (sp >= 0) H5Sclose(sp);
            H5Gclose(g);
            continue;
        }
        int ci = vgg_cin[l], co = vgg_cout[l];
        char wn[2][64];
        if (layout == FIXTURE_H5_NEW_NAMES) {
            snprintf(wn[0], sizeof wn[0], "%s/kernel:0", layers[i]);
            snprintf(wn[1], sizeof wn[1], "%s/bias:0", layers[i]);
        } else {
            snprintf(wn[0], sizeof wn[0], "%s_W_1:0", layers[i]);
            snprintf(wn[1], sizeof wn[1], "%s_b_1:0", layers[i]);
        }
        const char *names[2] = {wn[0], wn[1]};
        /* [out][in][3][3] -> Keras's [3][3][in][out] */
        for (int o = 0; o < co; o++)
            for (int c = 0; c < ci; c++)
                for (int k = 0; k < 9; k++) tmp[((size_t)k * ci + c) * co + o] = p[((size_t)o * ci + c) * 9 + k];
        hsize_t kd[4] = {3, 3, (hsize_t)ci, (hsize_t)co}, bd[1] = {(hsize_t)co};
        ok = (layout == FIXTURE_H5_NO_NAMES || fixture_h5_strings(g, "weight_names", names, 2) == 0) &&
             fixture_h5_f32(g, wn[0], tmp, kd, 4) == 0 &&
             fixture_h5_f32(g, wn[1], p + (size_t)co * ci * 9, bd, 1) == 0;
        p += (size_t)co * ci * 9 + (size_t)co;
        l++;
        H5Gclose(g);
    }
    if (f >= 0 && H5Fclose(f) < 0) ok = 0;
    free(v);
    free(tmp);
    if (!ok) fprintf(stderr, "write_vgg_h5: cannot write %s\n", path);
    return ok ? 0 : -1;
}

/* The VGG as vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 lays it out: root
 * attribute layer_names; per layer a group with attribute weight_names
 * ["block1_conv1_W_1:0", "block1_conv1_b_1:0"] naming its datasets, kernel [3][3][in][out]
 * (the same values as write_vgg_safetensors, transposed) and bias [out]. 0 or -1. */
static inline int write_vgg_h5(const char *path) { return fixture_write_vgg_h5_layout(path, FIXTURE_H5_REAL); }

/* ---- the discriminator ---- */

/* D's tensors in the doc's order: the trainer's own list (src/train/dnet.c). */
#define FIXTURE_D_TENSORS D_NUM_TENSORS
#define fixture_d_tensors d_tensors

/* D's values in fixture_d_tensors order (tensor t: seed 1000 + t; conv weight
 * a = 1 / sqrt(in * 9), conv bias a = 0.1, norm weight (float)(1 + 0.1 hash_v), norm
 * bias a = 0.1); malloc'd, NULL when out of memory. */
static inline float *fixture_d_values(void) {
    size_t n = 0;
    for (int t = 0; t < FIXTURE_D_TENSORS; t++) n += tensor_info_count(&fixture_d_tensors[t]);
    float *v = malloc(n * sizeof *v), *p = v;
    for (int t = 0; v && t < FIXTURE_D_TENSORS; t++) {
        const tensor_info *ti = &fixture_d_tensors[t];
        size_t c = tensor_info_count(ti);
        uint64_t seed = 1000 + (uint64_t)t;
        if (ti->ndim == 4) fill_hash(p, c, seed, 1 / sqrt(ti->shape[1] * 9.0));
        else if (strncmp(ti->name, "norm", 4) == 0 && strstr(ti->name, ".weight"))
            for (size_t i = 0; i < c; i++) p[i] = (float)(1 + 0.1 * hash_v(seed, i));
        else fill_hash(p, c, seed, 0.1);
        p += c;
    }
    return v;
}

/* D's 20 tensors as a .safetensors file. 0 or -1. */
static inline int write_d_safetensors(const char *path) {
    float *v = fixture_d_values();
    cg_status st = v ? st_save(path, fixture_d_tensors, FIXTURE_D_TENSORS, v, 0, "\"model\":\"d-fixture\"") : CG_ERR_NOMEM;
    free(v);
    if (st != CG_OK) fprintf(stderr, "write_d_safetensors: %s\n", cg_last_error());
    return st == CG_OK ? 0 : -1;
}

/* ---- summaries ---- */

#define SUMMARY_K 64

/* out [T][2 + SUMMARY_K] for the T tensors of specs, stored concatenated in data: the L2
 * norm (summed in double), the max |value|, and the values at idx_j (j % count when
 * count <= K, else splitmix64(t * 1000003 + j) % count). */
static inline void summarize(float *out, const float *data, const tensor_info *specs, int T) {
    for (int t = 0; t < T; t++, out += 2 + SUMMARY_K) {
        size_t count = tensor_info_count(&specs[t]);
        double ss = 0, mx = 0;
        for (size_t i = 0; i < count; i++) {
            double x = data[i];
            ss += x * x;
            if (fabs(x) > mx) mx = fabs(x);
        }
        out[0] = (float)sqrt(ss);
        out[1] = (float)mx;
        for (int j = 0; j < SUMMARY_K; j++) {
            size_t idx = count <= SUMMARY_K ? (size_t)j % count
                                            : (size_t)(splitmix64((uint64_t)t * 1000003 + (uint64_t)j) % count);
            out[2 + j] = data[idx];
        }
        data += count;
    }
}

#endif
