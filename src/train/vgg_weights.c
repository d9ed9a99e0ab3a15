/* vgg_weights.c: loading the frozen VGG19 (conv1_1 .. conv4_4) from torchvision's
 * .safetensors (through safetensors.c) or from Keras's .h5 (through libhdf5). The format is
 * told by the file's content, not its name, and decides the input preprocessing
 * (doc/training-engine.md, "VGG19 weights and preprocessing"). Every failure is one line
 * naming the file and the tensor; damaged files never crash (libhdf5 checks its own
 * structures, and nothing is read before its shape and type are checked). */
#include "train/vgg_weights.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/safetensors.h"
#include "status.h"

const int vgg_cin[VGG_LAYERS] = {3, 64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512};
const int vgg_cout[VGG_LAYERS] = {64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512};

/* torchvision's indices into vgg19().features of the 12 convolutions */
static const int tv_index[VGG_LAYERS] = {0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25};

static const char *const keras_group[VGG_LAYERS] = {
    "block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2",
    "block3_conv1", "block3_conv2", "block3_conv3", "block3_conv4",
    "block4_conv1", "block4_conv2", "block4_conv3", "block4_conv4",
};

static size_t weight_count(int l) { return (size_t)vgg_cout[l] * (size_t)vgg_cin[l] * 9; }

/* ---- torchvision .safetensors ---- */

static cg_status load_safetensors(float *params, const char *path) {
    char names[2 * VGG_LAYERS][32];
    tensor_info specs[2 * VGG_LAYERS];
    for (int l = 0; l < VGG_LAYERS; l++) {
        snprintf(names[2 * l], sizeof names[0], "features.%d.weight", tv_index[l]);
        snprintf(names[2 * l + 1], sizeof names[0], "features.%d.bias", tv_index[l]);
        specs[2 * l] = (tensor_info){names[2 * l], 4, {vgg_cout[l], vgg_cin[l], 3, 3}};
        specs[2 * l + 1] = (tensor_info){names[2 * l + 1], 1, {vgg_cout[l], 0, 0, 0}};
    }
    /* the full torchvision file (classifier included) is about 550 MB: no size limit, and
     * only these tensors are read */
    return st_load(path, specs, 2 * VGG_LAYERS, params, 1, 0, "a VGG19");
}

/* ---- Keras .h5 ---- */

#define MAX_NAME 256

/* The names the group's `weight_names` attribute lists (Keras's order: kernel, bias), as
 * fixed-length or variable-length strings. Returns how many (at most max), -1 when the
 * attribute is absent, -2 when it is unreadable. */
static int weight_names(hid_t g, char names[][MAX_NAME], int max) {
    if (H5Aexists(g, "weight_names") <= 0) return -1;
    int n = -2;
    hid_t a = H5Aopen(g, "weight_names", H5P_DEFAULT), t = -1, sp = -1, mt = -1;
    if (a < 0 || (t = H5Aget_type(a)) < 0 || (sp = H5Aget_space(a)) < 0) goto done;
    hssize_t np = H5Sget_simple_extent_npoints(sp);
    if (H5Tget_class(t) != H5T_STRING || np < 0 || np > max) goto done;
    if (H5Tis_variable_str(t) > 0) {
        char *p[8] = {0};
        if (np > 8 || (mt = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(mt, H5T_VARIABLE) < 0 ||
            H5Tset_cset(mt, H5Tget_cset(t)) < 0 || H5Aread(a, mt, p) < 0)
            goto done;
        for (int i = 0; i < np; i++) snprintf(names[i], MAX_NAME, "%s", p[i] ? p[i] : "");
#if H5_VERSION_GE(1, 12, 0)
        H5Treclaim(mt, sp, H5P_DEFAULT, p);
#else
        H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, p);
#endif
    } else {
        /* read with the file's own string type: converting h5py's null-padded strings
         * to null-terminated ones of the same size would cut their last character */
        size_t sz = H5Tget_size(t);
        char *buf = sz && sz < MAX_NAME ? malloc((size_t)np * sz + 1) : NULL;
        if (!buf || (mt = H5Tcopy(t)) < 0 || H5Aread(a, mt, buf) < 0) { free(buf); goto done; }
        for (int i = 0; i < np; i++) {
            memcpy(names[i], buf + (size_t)i * sz, sz);
            names[i][sz] = 0;
            for (size_t k = strlen(names[i]); k > 0 && names[i][k - 1] == ' '; k--) names[i][k - 1] = 0;
        }
        free(buf);
    }
    n = (int)np;
done:
    if (mt >= 0) H5Tclose(mt);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return n;
}

/* Without weight_names: the group's (one) 4-D and (one) 1-D datasets, at any depth. */
typedef struct {
    char kernel[MAX_NAME], bias[MAX_NAME];
    int nk, nb, visited;
} ds_search;

static herr_t visit(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    ds_search *s = data;
    if (++s->visited > 1000) return 1; /* a pathological file: stop looking */
    if (info->type != H5L_TYPE_HARD) return 0;
    hid_t o = H5Oopen(g, name, H5P_DEFAULT);
    if (o < 0) return 0;
    if (H5Iget_type(o) == H5I_DATASET) {
        hid_t sp = H5Dget_space(o);
        int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
        if (sp >= 0) H5Sclose(sp);
        if (nd == 4 && s->nk++ == 0) snprintf(s->kernel, MAX_NAME, "%s", name);
        if (nd == 1 && s->nb++ == 0) snprintf(s->bias, MAX_NAME, "%s", name);
    }
    H5Oclose(o);
    return 0;
}

static void dims_str(char *buf, size_t n, const hsize_t *d, int nd) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < nd && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%llu", i ? "," : "", (unsigned long long)d[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

/* Reads dataset `ds` of group `gname` (open as g) into dst after checking that it is
 * 32-bit float of shape want[0..nd); every value must be finite. */
static cg_status read_tensor(hid_t g, const char *gname, const char *ds, const char *path,
                             const hsize_t *want, int nd, float *dst) {
    cg_status st = CG_OK;
    hid_t d = -1, t = -1, sp = -1;
    if (H5Lexists(g, ds, H5P_DEFAULT) <= 0 || (d = H5Dopen2(g, ds, H5P_DEFAULT)) < 0)
        return cg_fail(CG_ERR_WEIGHTS, "%s: missing dataset %s/%s", path, gname, ds);
    if ((t = H5Dget_type(d)) < 0 || (sp = H5Dget_space(d)) < 0) {
        st = cg_fail(CG_ERR_FORMAT, "%s: unreadable dataset %s/%s", path, gname, ds);
        goto done;
    }
    H5T_class_t cls = H5Tget_class(t);
    size_t bits = 8 * H5Tget_size(t);
    if (cls != H5T_FLOAT || bits != 32) {
        char type[32];
        if (cls == H5T_FLOAT) snprintf(type, sizeof type, "float%zu", bits);
        else if (cls == H5T_INTEGER) snprintf(type, sizeof type, "int%zu", bits);
        else snprintf(type, sizeof type, "non-numeric");
        st = cg_fail(CG_ERR_WEIGHTS, "%s: dataset %s/%s has type %s, expected float32", path, gname, ds, type);
        goto done;
    }
    hsize_t dims[H5S_MAX_RANK];
    int got = H5Sget_simple_extent_ndims(sp);
    if (got < 0 || got > H5S_MAX_RANK || H5Sget_simple_extent_dims(sp, dims, NULL) < 0) {
        st = cg_fail(CG_ERR_FORMAT, "%s: unreadable shape of dataset %s/%s", path, gname, ds);
        goto done;
    }
    int ok = got == nd;
    for (int i = 0; ok && i < nd; i++) ok = dims[i] == want[i];
    if (!ok) {
        char a[96], b[96];
        dims_str(a, sizeof a, dims, got);
        dims_str(b, sizeof b, want, nd);
        st = cg_fail(CG_ERR_WEIGHTS, "%s: dataset %s/%s has shape %s, expected %s", path, gname, ds, a, b);
        goto done;
    }
    if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0) {
        st = cg_fail(CG_ERR_FORMAT, "%s: cannot read dataset %s/%s (damaged or truncated file?)", path, gname, ds);
        goto done;
    }
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)want[i];
    for (size_t i = 0; i < n; i++)
        if (!isfinite(dst[i])) {
            st = cg_fail(CG_ERR_WEIGHTS, "%s: dataset %s/%s holds a NaN or infinity", path, gname, ds);
            break;
        }
done:
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    H5Dclose(d);
    return st;
}

/* One layer: its group's kernel [3][3][cin][cout] into w as [cout][cin][3][3] (through
 * tmp), its bias into b. */
static cg_status load_group(hid_t root, int l, const char *path, float *w, float *b, float *tmp) {
    const char *gname = keras_group[l];
    htri_t ex = H5Lexists(root, gname, H5P_DEFAULT);
    if (ex <= 0)
        return l == 0 ? cg_fail(CG_ERR_WEIGHTS, "%s: no group %s: not a VGG19 in Keras's layout", path, gname)
                      : cg_fail(CG_ERR_WEIGHTS, "%s: missing group %s (not a VGG19?)", path, gname);
    hid_t g = H5Gopen2(root, gname, H5P_DEFAULT);
    if (g < 0) return cg_fail(CG_ERR_WEIGHTS, "%s: %s is not a group (not a VGG19?)", path, gname);
    cg_status st = CG_OK;
    char names[2][MAX_NAME];
    const char *kernel, *bias;
    ds_search s = {.nk = 0};
    int n = weight_names(g, names, 2);
    if (n == 2) {
        kernel = names[0], bias = names[1];
    } else if (n == -1) {
        H5Lvisit(g, H5_INDEX_NAME, H5_ITER_INC, visit, &s);
        if (s.nk != 1 || s.nb != 1) {
            st = cg_fail(CG_ERR_WEIGHTS, "%s: group %s has no weight_names and not one 4-D kernel and one 1-D bias dataset",
                         path, gname);
            goto done;
        }
        kernel = s.kernel, bias = s.bias;
    } else {
        st = cg_fail(CG_ERR_WEIGHTS, "%s: group %s's weight_names %s, expected a kernel and a bias", path, gname,
                     n == -2 ? "is unreadable" : "does not list two weights");
        goto done;
    }
    int ci = vgg_cin[l], co = vgg_cout[l];
    hsize_t kshape[4] = {3, 3, (hsize_t)ci, (hsize_t)co}, bshape[1] = {(hsize_t)co};
    if ((st = read_tensor(g, gname, kernel, path, kshape, 4, tmp)) != CG_OK) goto done;
    if ((st = read_tensor(g, gname, bias, path, bshape, 1, b)) != CG_OK) goto done;
    for (int o = 0; o < co; o++)
        for (int i = 0; i < ci; i++)
            for (int k = 0; k < 9; k++) w[((size_t)o * ci + i) * 9 + k] = tmp[((size_t)k * ci + i) * co + o];
done:
    H5Gclose(g);
    return st;
}

static cg_status load_h5(float *params, const char *path) {
    /* libhdf5 prints a stack of errors to stderr by default; ours are the messages */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return cg_fail(CG_ERR_FORMAT, "%s: cannot open as HDF5 (damaged or truncated?)", path);
    /* a whole model saved by model.save() keeps the layers under /model_weights */
    hid_t root = f, mw = -1;
    if (H5Lexists(f, keras_group[0], H5P_DEFAULT) <= 0 && H5Lexists(f, "model_weights", H5P_DEFAULT) > 0 &&
        (mw = H5Gopen2(f, "model_weights", H5P_DEFAULT)) >= 0)
        root = mw;
    cg_status st = CG_OK;
    float *tmp = malloc(weight_count(VGG_LAYERS - 1) * sizeof *tmp);
    if (!tmp) st = cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    float *p = params;
    for (int l = 0; st == CG_OK && l < VGG_LAYERS; l++) {
        st = load_group(root, l, path, p, p + weight_count(l), tmp);
        p += weight_count(l) + (size_t)vgg_cout[l];
    }
    free(tmp);
    if (mw >= 0) H5Gclose(mw);
    H5Fclose(f);
    return st;
}

/* ---- the handle ---- */

cg_status vgg_weights_load(vgg_weights *v, const char *path) {
    if (!v || !path) return cg_fail(CG_ERR_ARG, "vgg_weights_load: null argument");
    memset(v, 0, sizeof *v);
    /* the format from the first bytes: HDF5's signature, or a plausible safetensors
     * header length followed by the JSON object */
    FILE *f = fopen(path, "rb");
    if (!f) return cg_fail(CG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char head[9];
    struct stat sb;
    int regular = fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode);
    size_t n = regular ? fread(head, 1, sizeof head, f) : 0;
    fclose(f);
    if (!regular) return cg_fail(CG_ERR_IO, "%s: not a regular file", path);
    int h5 = n >= 8 && memcmp(head, "\x89HDF\r\n\x1a\n", 8) == 0;
    unsigned long long hlen = 0;
    for (int i = 7; n >= 8 && i >= 0; i--) hlen = hlen << 8 | head[i];
    /* n == 9 means the file has at least 9 bytes */
    int st_like = n == 9 && head[8] == '{' && hlen >= 2 && hlen <= (unsigned long long)sb.st_size - 8;
    if (!h5 && !st_like)
        return cg_fail(CG_ERR_FORMAT, "%s: not VGG19 weights: neither a .safetensors nor a Keras .h5 file", path);

    size_t total = 0;
    for (int l = 0; l < VGG_LAYERS; l++) total += weight_count(l) + (size_t)vgg_cout[l];
    v->params = malloc(total * sizeof *v->params);
    if (!v->params) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    cg_status st = h5 ? load_h5(v->params, path) : load_safetensors(v->params, path);
    if (st != CG_OK) {
        vgg_weights_free(v);
        return st;
    }
    const float *p = v->params;
    for (int l = 0; l < VGG_LAYERS; l++) {
        v->w[l] = p;
        v->b[l] = p + weight_count(l);
        p += weight_count(l) + (size_t)vgg_cout[l];
    }
    v->prep = h5 ? VGG_PREP_CAFFE : VGG_PREP_TORCH;
    return CG_OK;
}

void vgg_weights_free(vgg_weights *v) {
    if (!v) return;
    free(v->params);
    memset(v, 0, sizeof *v);
}
