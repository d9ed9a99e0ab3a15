/* gif.h: animated GIFs, frame by frame. The reader composites each frame onto the logical
 * screen as browsers do (offsets, disposal none/background/previous, transparent index,
 * frames clipped to the screen) and hands out the whole screen; the writer quantizes each
 * RGB frame to its own palette of up to 256 colours with libimagequant and streams it out.
 * Neither holds more than a frame or two, so a long GIF costs no more memory than a short
 * one. Errors go through cg_fail ("PATH: reason"); nothing is printed and nothing exits. */
#ifndef CG_IO_GIF_H
#define CG_IO_GIF_H

#include <stdint.h>

#include "cartoongan.h"

/* GIF delays are 16-bit counts of 1/100 s. */
#define CG_GIF_MAX_DELAY 65535

typedef struct {
    int width, height;      /* the logical screen: the size of every composited frame */
    int frame_count;        /* frames in the file */
    int loop_count;         /* NETSCAPE2.0 loop count: 0 = forever, N = N more times; -1 = the
                               file has none (it plays once) */
    const uint16_t *delays; /* frame_count delays in 1/100 s, as stored (0 included) */
} cg_gif_info;

typedef struct cg_gif_reader cg_gif_reader;

/* Opens a GIF and reads through it once without decoding pixels, to count its frames and
 * collect their delays and the loop count. Refused, before any pixel memory is allocated:
 * a file that is not a GIF, is truncated inside a frame or block, has no frame, or whose
 * logical screen is over max_pixels (0: CG_DEFAULT_MAX_PIXELS). A screen of 0x0 takes the
 * first frame's extent, as browsers do; a missing trailer is accepted, as browsers do. */
cg_status cg_gif_open(cg_gif_reader **out, const char *path, uint64_t max_pixels);
const cg_gif_info *cg_gif_get_info(const cg_gif_reader *r);

/* Decodes the next frame and composites it. `rgb` (width*height*3, may be NULL) gets the
 * screen composited onto white (what a page shows where the GIF is transparent); `rgba`
 * (width*height*4, may be NULL) gets it with alpha 0 (transparent) or 255. Fails on
 * corrupt image data, and with CG_ERR_ARG after the last frame. */
cg_status cg_gif_read_frame(cg_gif_reader *r, uint8_t *rgb, uint8_t *rgba);
void cg_gif_close(cg_gif_reader *r);

/* How long browsers show a frame with this delay: 0 and 1 (1/100 s) mean 10. */
int cg_gif_playback_delay(int delay_cs);

typedef struct cg_gif_writer cg_gif_writer;

/* Starts writing a GIF of width x height frames (at most 65535 a side) to a temporary file
 * next to `path`. loop_count as in cg_gif_info (-1: no loop extension). `dither` turns on
 * libimagequant's Floyd-Steinberg dithering. */
cg_status cg_gif_writer_open(cg_gif_writer **out, const char *path, int width, int height,
                             int loop_count, int dither);
/* Quantizes an RGB frame (width*height*3) and appends it, shown for delay_cs (clamped to
 * 0..CG_GIF_MAX_DELAY). */
cg_status cg_gif_writer_add(cg_gif_writer *w, const uint8_t *rgb, int delay_cs);
/* Ends the file and renames it into place; frees the writer whatever happens. */
cg_status cg_gif_writer_finish(cg_gif_writer *w);
/* Drops the file (nothing is left behind) and frees the writer; NULL does nothing. */
void cg_gif_writer_abort(cg_gif_writer *w);

#endif
