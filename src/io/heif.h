/* heif.h (internal): HEIC/HEIF and AVIF still images through libheif, for image.c's
 * decoder dispatch. Decoding only: nothing here writes HEIF. Errors go through cg_fail
 * ("NAME: reason"); nothing is printed and nothing exits. */
#ifndef CG_IO_HEIF_H
#define CG_IO_HEIF_H

#include <stddef.h>
#include <stdint.h>

#include "io/image.h"

/* 1 when the data starts with an ISO-BMFF 'ftyp' box whose major brand or one of whose
 * compatible brands is a HEIF or AVIF one (heic heix hevc hevx heim heis hevm hevs mif1
 * msf1 avif avis); 0 otherwise, including for MP4 / MOV videos (isom, mp41, qt ...) and for
 * fewer than 12 bytes. Reads at most the ftyp box (and never past n). */
int cg_heif_sniff(const uint8_t *data, size_t n);

/* Decodes the primary image of a HEIF (HEVC), AVIF (AV1) or other libheif-readable file
 * into img->rgb (w*h*3 bytes, packed RGB8, rows top to bottom; free with cg_image_free).
 * `name` is used in messages ("<memory>" when NULL or empty).
 *
 * The image comes back upright: libheif applies the file's irot/imir/clap properties,
 * which in HEIF are the authoritative orientation; an EXIF Orientation tag in the file is
 * ignored (it repeats irot/imir on iPhones, so applying it too would turn the picture
 * twice). Alpha is composited onto white, rounded as image.c does for PNG, and
 * img->had_alpha set; premultiplied alpha is composited as such. Samples of more than 8
 * bits (10-bit and 12-bit HEVC/AV1) are decoded at full depth by libheif and rounded here
 * to 8 bits, v * 255 / (2^bits - 1) to nearest, as 16-bit PNG samples are (libheif's
 * own 8-bit conversion would drop the low bits instead). img->warning
 * gets one of libheif's decoding warnings, if it had any (the last one: e.g. an invalid
 * colour description in the bitstream), else "" (a non-strict decode: libheif goes past
 * such faults).
 *
 * Limits: max_pixels (0: CG_DEFAULT_MAX_PIXELS) is checked against the primary image's
 * size in the header (its ispe, before and after the transforms) before any pixel memory
 * is allocated, and against the decoded size again; libheif's own limit on a side
 * (32768 by default) is lowered to max_pixels when that is smaller (a side over it is
 * refused while the boxes are read, with CG_ERR_LIMIT and libheif's message) and applies
 * to every tile of a grid image. Returns CG_OK, or with img left empty: CG_ERR_LIMIT (over the
 * pixel limit or a libheif security limit), CG_ERR_FORMAT (not a HEIF file, truncated or
 * corrupt data, no primary image, a codec this libheif has no decoder for, a feature it
 * cannot decode), CG_ERR_NOMEM, CG_ERR_ARG (img NULL). */
cg_status cg_heif_decode(cg_image *img, const uint8_t *data, size_t n, const char *name,
                         uint64_t max_pixels);

/* 1 when the HEIF/AVIF file at `path` has a primary image with an alpha channel, from the
 * file's boxes alone (nothing is decoded); 0 otherwise, also when the file cannot be read
 * or parsed (cg_heif_decode then says why). cartoonize names a HEIF's output .png when it
 * has alpha, .jpg otherwise, before decoding it. */
int cg_heif_file_has_alpha(const char *path);

#endif
