/* media_image.c: still images (JPEG, PNG, WebP, HEIC/AVIF) as a source of one frame and a
 * sink that saves it, so photos take the same pipeline as animations (media.h). Decoding
 * is image.c's: EXIF turns, alpha flattened onto white, the pixel limit from the header;
 * a damaged file that still decodes whole comes with a warning. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/media.h"
#include "io/image.h"
#include "status.h"

typedef struct {
    frame_source base;
    cg_image img;
    int read;
} image_source;

static cg_status image_read(frame_source *s, uint8_t *rgb, uint8_t *alpha, frame_time *t, int *got) {
    image_source *is = (image_source *)s;
    (void)alpha;
    *got = !is->read;
    if (is->read) return CG_OK;
    memcpy(rgb, is->img.rgb, (size_t)is->img.w * is->img.h * 3);
    memset(t, 0, sizeof *t);
    is->read = 1;
    return CG_OK;
}

static void image_close(frame_source *s) {
    image_source *is = (image_source *)s;
    cg_image_free(&is->img);
    free(is);
}

static cg_status image_open(frame_source **out, const char *path, uint64_t max_pixels,
                            int64_t max_frames) {
    (void)max_frames;
    image_source *is = calloc(1, sizeof *is);
    if (!is) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    cg_status s = cg_image_load(&is->img, path, max_pixels);
    if (s != CG_OK) {
        free(is);
        return s;
    }
    frame_info *in = &is->base.info;
    in->width = is->img.w;
    in->height = is->img.h;
    in->frame_count = 1;
    in->frame_count_exact = 1;
    in->loop_count = -1;
    in->tb_num = in->tb_den = 1;
    in->fps_den = 1;
    snprintf(is->base.warning, sizeof is->base.warning, "%s", is->img.warning);
    is->base.read = image_read;
    is->base.close = image_close;
    *out = &is->base;
    return CG_OK;
}

/* The output is written once, whole, by cg_image_save (atomic), in the format its name
 * says: the input's own, or .jpg / .png for HEIC and AVIF (which are not written). */
typedef struct {
    frame_sink base;
    char *path;
    int w, h;
} image_sink;

static cg_status image_add(frame_sink *k, const uint8_t *rgb, const uint8_t *alpha,
                           const frame_time *t) {
    image_sink *is = (image_sink *)k;
    (void)alpha, (void)t;
    cg_image out = {.w = is->w, .h = is->h, .rgb = (uint8_t *)rgb};
    return cg_image_save(&out, is->path, cg_format_from_path(is->path));
}

static void image_abort(frame_sink *k) {
    image_sink *is = (image_sink *)k;
    free(is->path);
    free(is);
}

static cg_status image_finish(frame_sink *k) {
    image_abort(k);
    return CG_OK;
}

static cg_status image_sink_open(frame_sink **out, const char *path, const frame_info *in,
                                 const frame_source *src, int alpha, const sink_opts *o) {
    (void)src, (void)alpha, (void)o;
    image_sink *is = calloc(1, sizeof *is);
    if (!is || !(is->path = strdup(path))) {
        free(is);
        return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    }
    is->w = in->width;
    is->h = in->height;
    is->base.add = image_add;
    is->base.finish = image_finish;
    is->base.abort = image_abort;
    *out = &is->base;
    return CG_OK;
}

const media_kind_ops media_image_ops = {"image", "images", NULL, 0, image_open, image_sink_open};
