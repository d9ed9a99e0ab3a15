/* events.c: TensorBoard event files (events.h). Each record is TFRecord-framed: the data's
 * length as a little-endian uint64, the masked CRC32C of those 8 bytes, the data (a
 * tensorflow.Event packed by protobuf-c from proto/tensorboard_event.proto), the masked
 * CRC32C of the data. Images are PNG-encoded with libpng.
 *
 * Records are gathered in memory and written with pwrite at the offset where the last
 * complete write ended. When a write fails (disk full, quota, I/O error) the file is cut
 * back to that offset and the unwritten records are dropped, so the file always ends on a
 * record boundary: TensorBoard keeps reading it, and later records land after the last
 * good one once there is room again. */
#include "io/events.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "io/crc32c.h"
#include "io/image.h"
#include "status.h"
#include "tensorboard_event.pb-c.h"

/* Buffered records are written out once they pass this size, so logging images between
 * two flushes does not hold them all in memory; below it, scalars cost no system call. */
#define EVENTS_WRITE_THRESHOLD (1u << 20)

struct cg_events {
    int fd;
    char *path;
    uint8_t *buf; /* records not yet written */
    size_t len, cap;
    off_t committed; /* bytes of whole records on disk */
};

/* TFRecord stores CRCs masked, because a CRC of data that itself holds CRCs is weak. */
static uint32_t masked_crc(const uint8_t *p, size_t n) { return cg_crc32c_mask(cg_crc32c(p, n)); }

static void put_le(uint8_t *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- writing ------------------------------------------------------------------------ */

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Writes the buffered records. On failure the file is truncated to the last whole record
 * and the buffer dropped (see the top of the file). */
static cg_status write_out(cg_events *e) {
    size_t done = 0;
    while (done < e->len) {
        ssize_t w = pwrite(e->fd, e->buf + done, e->len - done, e->committed + (off_t)done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int err = w < 0 ? errno : EIO;
            size_t lost = e->len;
            e->len = 0;
            if (ftruncate(e->fd, e->committed) != 0)
                return cg_fail(CG_ERR_IO, "%s: write failed: %s (and truncating after it: %s)",
                               e->path, strerror(err), strerror(errno));
            return cg_fail(CG_ERR_IO, "%s: write failed: %s (%zu bytes of events dropped)",
                           e->path, strerror(err), lost);
        }
        done += (size_t)w;
    }
    e->committed += (off_t)e->len;
    e->len = 0;
    return CG_OK;
}

/* Frames one Event as a TFRecord at the end of the buffer. */
static cg_status append_event(cg_events *e, Tensorflow__Event *ev) {
    ev->wall_time = now_seconds();
    size_t n = tensorflow__event__get_packed_size(ev);
    if (n > SIZE_MAX - 16 - e->len) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", e->path);
    size_t need = e->len + 16 + n;
    if (need > e->cap) {
        size_t cap = e->cap ? e->cap : 65536;
        while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        uint8_t *nb = realloc(e->buf, cap);
        if (!nb) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", e->path);
        e->buf = nb, e->cap = cap;
    }
    uint8_t *p = e->buf + e->len;
    put_le(p, n, 8);
    put_le(p + 8, masked_crc(p, 8), 4);
    tensorflow__event__pack(ev, p + 12);
    put_le(p + 12 + n, masked_crc(p + 12, n), 4);
    e->len = need;
    return e->len >= EVENTS_WRITE_THRESHOLD ? write_out(e) : CG_OK;
}

static cg_status append_value(cg_events *e, int64_t step, Tensorflow__Summary__Value *v) {
    Tensorflow__Summary__Value *values[1] = {v};
    Tensorflow__Summary sum = TENSORFLOW__SUMMARY__INIT;
    sum.n_value = 1, sum.value = values;
    Tensorflow__Event ev = TENSORFLOW__EVENT__INIT;
    ev.step = step;
    ev.what_case = TENSORFLOW__EVENT__WHAT_SUMMARY, ev.summary = &sum;
    return append_event(e, &ev);
}

/* ---- opening ------------------------------------------------------------------------ */

/* "dir/events.out.tfevents.<seconds>.<host>.<pid>.<n>", as TensorFlow names them (it adds
 * the pid and a counter too); malloc'd, or NULL when out of memory. */
static char *event_file_name(const char *dir, long long secs, unsigned n) {
    char host[256];
    if (gethostname(host, sizeof host) != 0 || !host[0]) strcpy(host, "localhost");
    host[sizeof host - 1] = 0;
    for (char *c = host; *c; c++)
        if (*c == '/') *c = '_';
    const char *fmt = "%s/events.out.tfevents.%lld.%s.%ld.%u";
    int len = snprintf(NULL, 0, fmt, dir, secs, host, (long)getpid(), n);
    char *path = len < 0 ? NULL : malloc((size_t)len + 1);
    if (path) snprintf(path, (size_t)len + 1, fmt, dir, secs, host, (long)getpid(), n);
    return path;
}

cg_status cg_events_open(cg_events **out, const char *dir) {
    if (!out || !dir || !dir[0]) return cg_fail(CG_ERR_ARG, "cg_events_open: no directory given");
    *out = NULL;
    cg_status s = cg_mkdir_p(dir);
    if (s != CG_OK) return s;
    cg_events *e = calloc(1, sizeof *e);
    if (!e) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", dir);
    e->fd = -1;
    /* Two writers opening in the same second (in this process or another one with our pid
     * in another container) get different names; O_EXCL makes sure none is ever reused. */
    static atomic_uint counter;
    long long secs = (long long)time(NULL);
    for (int attempt = 0; e->fd < 0; attempt++) {
        free(e->path);
        e->path = event_file_name(dir, secs, atomic_fetch_add(&counter, 1));
        if (!e->path) {
            free(e);
            return cg_fail(CG_ERR_NOMEM, "%s: out of memory", dir);
        }
        e->fd = open(e->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (e->fd < 0 && (errno != EEXIST || attempt >= 1000)) {
            s = cg_fail(CG_ERR_IO, "%s: cannot create: %s", e->path, strerror(errno));
            free(e->path);
            free(e);
            return s;
        }
    }
    Tensorflow__Event ev = TENSORFLOW__EVENT__INIT;
    ev.what_case = TENSORFLOW__EVENT__WHAT_FILE_VERSION;
    ev.file_version = (char *)"brain.Event:2";
    s = append_event(e, &ev);
    /* Written at once, so TensorBoard sees the run as soon as it exists. */
    if (s == CG_OK) s = write_out(e);
    if (s != CG_OK) {
        close(e->fd);
        unlink(e->path);
        free(e->buf);
        free(e->path);
        free(e);
        return s;
    }
    *out = e;
    return CG_OK;
}

/* ---- scalars and images ------------------------------------------------------------- */

static cg_status check_tag(const cg_events *e, const char *tag, const char *fn) {
    if (!e) return cg_fail(CG_ERR_ARG, "%s: no event file", fn);
    if (!tag || !tag[0]) return cg_fail(CG_ERR_ARG, "%s: %s: empty tag", e->path, fn);
    return CG_OK;
}

cg_status cg_events_scalar(cg_events *e, const char *tag, int64_t step, float value) {
    cg_status s = check_tag(e, tag, "cg_events_scalar");
    if (s != CG_OK) return s;
    Tensorflow__Summary__Value v = TENSORFLOW__SUMMARY__VALUE__INIT;
    v.tag = (char *)tag;
    v.value_case = TENSORFLOW__SUMMARY__VALUE__VALUE_SIMPLE_VALUE, v.simple_value = value;
    return append_value(e, step, &v);
}

cg_status cg_events_image(cg_events *e, const char *tag, int64_t step, const uint8_t *rgb, int w,
                          int h) {
    cg_status s = check_tag(e, tag, "cg_events_image");
    if (s != CG_OK) return s;
    if (!rgb || w <= 0 || h <= 0)
        return cg_fail(CG_ERR_ARG, "%s: image %s: no pixels or a bad size (%dx%d)", e->path, tag, w, h);
    /* libpng's own limit on a side (PNG_USER_WIDTH_MAX), said here in our words. */
    if (w > 1000000 || h > 1000000)
        return cg_fail(CG_ERR_LIMIT, "%s: image %s: %dx%d is larger than PNG allows here (1000000 a side)",
                       e->path, tag, w, h);
    uint8_t *png = NULL;
    size_t png_size = 0;
    char name[600];
    snprintf(name, sizeof name, "%s: image %s", e->path, tag);
    const cg_image pixels = {.w = w, .h = h, .rgb = (uint8_t *)rgb};
    if ((s = cg_png_encode(&pixels, name, &png, &png_size)) != CG_OK) return s;
    Tensorflow__Summary__Image img = TENSORFLOW__SUMMARY__IMAGE__INIT;
    img.height = h, img.width = w, img.colorspace = 3; /* RGB */
    img.encoded_image_string.data = png, img.encoded_image_string.len = png_size;
    Tensorflow__Summary__Value v = TENSORFLOW__SUMMARY__VALUE__INIT;
    v.tag = (char *)tag;
    v.value_case = TENSORFLOW__SUMMARY__VALUE__VALUE_IMAGE, v.image = &img;
    s = append_value(e, step, &v);
    free(png);
    return s;
}

/* ---- flushing and closing ----------------------------------------------------------- */

cg_status cg_events_flush(cg_events *e) {
    if (!e) return cg_fail(CG_ERR_ARG, "cg_events_flush: no event file");
    cg_status s = write_out(e);
    if (s != CG_OK) return s;
    if (fsync(e->fd) != 0) return cg_fail(CG_ERR_IO, "%s: fsync failed: %s", e->path, strerror(errno));
    return CG_OK;
}

void cg_events_close(cg_events *e) {
    if (!e) return;
    (void)cg_events_flush(e);
    close(e->fd);
    free(e->buf);
    free(e->path);
    free(e);
}
