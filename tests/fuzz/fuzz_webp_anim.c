/* fuzz_webp_anim.c: libFuzzer target: the animated WebP reader (cg_webp_anim_open's header
 * checks and libwebpdemux's chunk walk, then cg_webp_anim_read_frame's decoding and
 * compositing: offsets, blending, disposal), and the cheap probe on the same bytes. The
 * reader takes a path, so the input is put in a memory file and opened through
 * /proc/self/fd, as fuzz_gif does. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "io/webp_anim.h"

#define FUZZ_MAX_PIXELS (1u << 20) /* small canvases keep each run fast */
#define FUZZ_MAX_FRAMES 64

static volatile unsigned sink;

int fuzz_webp_anim(const uint8_t *data, size_t size) {
    int probe = cg_webp_is_animated(data, size);
    int fd = memfd_create("fuzz.webp", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    cg_webp_anim_reader *r = NULL;
    if (cg_webp_anim_open(&r, path, FUZZ_MAX_PIXELS) == CG_OK) {
        const cg_webp_anim_info *info = cg_webp_anim_get_info(r);
        /* an opened file passed the probe, and its canvas the limit */
        if (!probe || info->width <= 0 || info->height <= 0 || info->frame_count <= 0 ||
            (uint64_t)info->width * info->height > FUZZ_MAX_PIXELS)
            abort();
        unsigned sum = 0;
        for (int i = 0; i < info->frame_count; i++) sum += (unsigned)info->durations[i];
        size_t px = (size_t)info->width * info->height;
        uint8_t *rgb = malloc(px * 3), *rgba = malloc(px * 4);
        /* every other frame without the RGBA copy, which the reader allows */
        for (int i = 0; rgb && rgba && i < info->frame_count && i < FUZZ_MAX_FRAMES; i++) {
            if (cg_webp_anim_read_frame(r, rgb, i % 2 ? NULL : rgba) != CG_OK) break;
            sum += rgb[px * 3 - 1] + rgba[px * 4 - 1];
        }
        sink = sum;
        free(rgb);
        free(rgba);
        cg_webp_anim_close(r);
    } else if (r) {
        abort(); /* a failed open must not hand out a reader */
    }
    close(fd);
    return 0;
}

FUZZ_TARGET(fuzz_webp_anim)
