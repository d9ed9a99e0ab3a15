/* image.h: reading still images (JPEG, PNG, WebP, and HEIC/HEIF and AVIF through libheif)
 * and writing them (JPEG, PNG, WebP; HEIF is never written) as packed RGB8, resizing, and
 * atomic file output. Every decoder checks the header's size against a pixel limit
 * before allocating, converts grayscale / palette / CMYK / alpha / 16-bit input to RGB8,
 * and returns images upright: JPEG, PNG and WebP by their EXIF orientation (APP1, eXIf
 * chunk before or after the image data, EXIF chunk; a broken block is ignored),
 * HEIF and AVIF by their irot/imir properties, which there outrank EXIF (heif.h).
 * Transparency is composited onto a white background and then dropped; 16-bit PNG and
 * 10/12-bit HEIF samples are rounded to 8 bits; gamma and ICC profiles are ignored (values
 * are taken as sRGB). Animated WebP is refused; of a HEIF file only the primary image is
 * read.
 * Damaged JPEGs decode as browsers show them when every row is decoded from data in the
 * file: one missing only its end-of-image marker, or whose damaged data libjpeg went past
 * (gray or garbled blocks, resynchronised at a restart marker), comes back CG_OK with
 * `warning` set. One whose data stops before its last row, or a progressive one before
 * its final scan, is refused (CG_ERR_FORMAT, "truncated JPEG: only R of H rows present"
 * or "... before the final scan"), as are valid JPEGs libjpeg cannot decode (12-bit,
 * lossless, hierarchical: "... is not supported"). Limitation: an arithmetic-coded JPEG
 * cut within its last 8 or 16 rows passes as one missing only its end-of-image marker. */
#ifndef CG_IO_IMAGE_H
#define CG_IO_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "cartoongan.h"

/* The default decode limit: 100 megapixels (e.g. 12000 x 8333). A header claiming more
 * is refused before any pixel memory is allocated. */
#define CG_DEFAULT_MAX_PIXELS (100ull * 1000 * 1000)

/* CG_FMT_HEIF covers HEIC/HEIF and AVIF (one decoder, libheif); it is read, never written. */
typedef enum { CG_FMT_UNKNOWN = 0, CG_FMT_JPEG, CG_FMT_PNG, CG_FMT_WEBP, CG_FMT_HEIF } cg_format;

typedef struct {
    int w, h;
    uint8_t *rgb; /* w*h*3 bytes, owned; free with cg_image_free */
    /* Set by the decoders, ignored by the encoders: */
    int had_alpha;      /* the file had an alpha channel (now flattened onto white) */
    char warning[200];  /* "" for a clean decode; else the recoverable damage the decoder
                           went past (e.g. "the data ends without an end-of-image marker"),
                           without the file's name */
} cg_image;

/* Format from a file name's extension, case-insensitive (.jpg .jpeg .png .webp, and .heic
 * .heif .avif: CG_FMT_HEIF). */
cg_format cg_format_from_path(const char *path);
/* Format from the first bytes of a file (magic numbers; for HEIF/AVIF the ftyp box's
 * brands, see cg_heif_sniff in heif.h). */
cg_format cg_format_sniff(const uint8_t *data, size_t n);

/* Decode a file; the format is taken from its content, not its name. On failure returns a
 * status and sets cg_last_error() to "PATH: reason". max_pixels 0 means the default. */
cg_status cg_image_load(cg_image *img, const char *path, uint64_t max_pixels);
/* The same from memory; `name` is used in messages. */
cg_status cg_image_decode(cg_image *img, const uint8_t *data, size_t n, const char *name,
                          uint64_t max_pixels);
void cg_image_free(cg_image *img);

/* Encode to `path` in `fmt` (JPEG quality 95 4:4:4, lossless PNG, WebP quality 95),
 * atomically: written to a temporary file in the same directory, then renamed. Missing
 * parent directories are created. Nothing is left behind on failure. CG_FMT_UNKNOWN means
 * "from the path's extension". No metadata is written. CG_FMT_HEIF (or a .heic / .heif /
 * .avif path) fails with CG_ERR_ARG: "writing HEIF is not supported". */
cg_status cg_image_save(const cg_image *img, const char *path, cg_format fmt);
/* PNG-encodes img (8-bit RGB) into a new buffer (*out, *n bytes; free it); `name` names it
 * in messages. CG_ERR_NOMEM or CG_ERR_FORMAT on failure. */
cg_status cg_png_encode(const cg_image *img, const char *name, uint8_t **out, size_t *n);

/* Resize with a separable Lanczos-3 filter whose support widens when downscaling, so
 * downscales are antialiased (like PIL's LANCZOS). dst must be allocated by the caller
 * (dw*dh*3) and must not overlap src. The same size gives an exact copy; a non-positive
 * size or a null pointer does nothing. */
void cg_resize_rgb(uint8_t *dst, int dw, int dh, const uint8_t *src, int sw, int sh);

/* Write `n` bytes to `path` atomically (temp file + fsync + rename, parents created). */
cg_status cg_write_file_atomic(const char *path, const void *data, size_t n);
/* A file written piece by piece (an animated GIF, an MP4) with cg_write_file_atomic's
 * guarantee. cg_atomic_begin creates an empty temporary file next to `path` (parents
 * created) and leaves it open and locked as `fd`; the caller writes through fd, or has
 * another library write `tmp` by name while fd stays open (the lock marks the file as
 * live). cg_atomic_commit syncs the file and renames it into place; cg_atomic_abort
 * removes it. Both close fd if it is still open and free the strings, so every begun file
 * ends with exactly one of the two. */
typedef struct {
    char *path, *tmp;
    int fd;
} cg_atomic_file;
cg_status cg_atomic_begin(cg_atomic_file *f, const char *path);
cg_status cg_atomic_commit(cg_atomic_file *f);
void cg_atomic_abort(cg_atomic_file *f);

/* Removes from `dir` (not its subfolders) the temporary files of atomic writes whose
 * process died mid-write (SIGKILL, power loss), ".<name>.tmp-XXXXXX": only those that no
 * live writer holds (writers keep an exclusive flock on them) and that nothing has touched
 * for min_age_s seconds, so a concurrent run's files are never taken. Returns how many
 * were removed; a missing folder is not an error. */
int cg_clean_stale_temps(const char *dir, int min_age_s);
/* The age cartoonize uses: longer than any pause in writing one file. */
#define CG_STALE_TEMP_SECONDS 600

/* Create a directory and its parents (like mkdir -p). */
cg_status cg_mkdir_p(const char *path);

#endif
