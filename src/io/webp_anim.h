/* webp_anim.h: animated WebP, frame by frame, as gif.h does for GIFs. The reader hands out
 * each frame composited onto the canvas as browsers show it (frame offsets, alpha blending
 * or not, disposal to transparent) through libwebp's WebPAnimDecoder, which decodes one
 * frame at a time: it holds the file's bytes and two canvases, so a long animation costs
 * no more pixel memory than a short one. The writer encodes each frame as it comes with
 * libwebp's WebPAnimEncoder (lossy; alpha, when kept, lossless), which keeps only the
 * compressed frames and a few canvases, never the raw frames, and writes the file
 * atomically. Errors go through cg_fail ("PATH: reason"); nothing is printed and nothing
 * exits. Still WebPs are cg_image_load's (image.h), which refuses animated ones. */
#ifndef CG_IO_WEBP_ANIM_H
#define CG_IO_WEBP_ANIM_H

#include <stddef.h>
#include <stdint.h>

#include "cartoongan.h"

/* The writer's lossy quality (0..100). On the anime stills of shared/data/cartoon/anime
 * (256x256) quality 90 gives 39.0 and 41.4 dB PSNR at 2.4 and 1.5 bits per pixel; 95 adds
 * about 2.3 dB for 30-37% more bytes, a cost every frame of an animation pays again, and
 * 85 loses 2 dB to save 21-22%. Cartoon output has flat areas and hard edges, where lower
 * qualities show ringing first. (Stills are written at 95, image.h.) */
#define CG_WEBP_ANIM_QUALITY 90
/* Frame durations are 24-bit counts of milliseconds. */
#define CG_WEBP_ANIM_MAX_DURATION 0xffffff
/* A WebP canvas is at most 16383 pixels a side (what libwebp's encoder accepts). */
#define CG_WEBP_ANIM_MAX_SIDE 16383
/* Loop counts are 16-bit. */
#define CG_WEBP_ANIM_MAX_LOOP 65535

typedef struct {
    int width, height;      /* the canvas: the size of every composited frame */
    int frame_count;        /* frames in the file, at least 1 */
    int loop_count;         /* how many times the animation plays: 0 = forever, N = N times
                               in all (WebP's meaning, which browsers follow; a GIF's
                               NETSCAPE count is the number of repeats after the first) */
    int has_alpha;          /* the file says it has alpha (the VP8X alpha flag): some frame
                               carries alpha, which may still composite to an opaque canvas
                               (encoders code unchanged pixels as transparent) */
    uint32_t bgcolor;       /* the ANIM chunk's background colour as stored: its bytes
                               [Blue, Green, Red, Alpha] read little-endian, so 0xAARRGGBB.
                               Browsers ignore it and start from a transparent canvas, and
                               so does the reader */
    const int *durations;   /* frame_count durations in milliseconds (0 to
                               CG_WEBP_ANIM_MAX_DURATION), as stored (0 included) */
} cg_webp_anim_info;

typedef struct cg_webp_anim_reader cg_webp_anim_reader;

/* 1 when `data` starts like a WebP file whose VP8X header has the animation flag; 0
 * otherwise (a still WebP, another format, or fewer than the 21 bytes needed to tell). A
 * cheap probe: it looks at those 21 bytes only, so the file may still turn out corrupt. */
int cg_webp_is_animated(const uint8_t *data, size_t n);

/* Opens an animated WebP: reads the file into memory (where it stays, as the decoder reads
 * each frame from it), checks the canvas against max_pixels (0: CG_DEFAULT_MAX_PIXELS)
 * from the VP8X header before anything else is allocated, then walks the chunks (no pixel
 * is decoded) for the frame count, the durations and the loop count. On failure *out is
 * NULL and the status is: CG_ERR_IO (cannot open or read), CG_ERR_FORMAT ("not a WebP
 * file"; a still WebP, "not animated: load it with cg_image_load"; "truncated" when the
 * file is shorter than its RIFF header says, which browsers refuse too; chunks that do not
 * parse, or an animation without frames), CG_ERR_LIMIT (canvas over max_pixels) or
 * CG_ERR_NOMEM. */
cg_status cg_webp_anim_open(cg_webp_anim_reader **out, const char *path, uint64_t max_pixels);
/* The same from memory: the n bytes are copied, so `data` may be freed after the call;
 * `name` stands for the path in messages. */
cg_status cg_webp_anim_open_memory(cg_webp_anim_reader **out, const uint8_t *data, size_t n,
                                   const char *name, uint64_t max_pixels);
const cg_webp_anim_info *cg_webp_anim_get_info(const cg_webp_anim_reader *r);

/* Decodes the next frame and composites it as the WebP container spec says and browsers
 * do: the canvas starts transparent (not bgcolor); a frame with blending is drawn over the
 * canvas (alpha "over"; libwebp's 8-bit fixed-point version, the same as Chromium's, is
 * within 1 of the exact formula), one without replaces its rectangle; a frame disposed to
 * background has its rectangle cleared to transparent before the next is drawn. `rgba`
 * (width*height*4, may be NULL) gets the canvas with straight (not premultiplied) alpha,
 * fully transparent pixels as 0,0,0,0; `rgb` (width*height*3, may be NULL) gets it
 * composited onto white (what a page shows behind it). Fails with CG_ERR_FORMAT naming
 * the frame ("frame N does not decode") on corrupt image data, and with CG_ERR_ARG after
 * the last frame. */
cg_status cg_webp_anim_read_frame(cg_webp_anim_reader *r, uint8_t *rgb, uint8_t *rgba);
/* NULL does nothing. */
void cg_webp_anim_close(cg_webp_anim_reader *r);

/* How long browsers show a frame stored with this duration: 10 ms or less means 100 ms
 * (Chromium's DeferredImageDecoder::FrameDurationAtIndex, for every animated format
 * including WebP; Firefox and WebKit do the same); longer durations are kept. */
int cg_webp_anim_playback_ms(int duration_ms);

typedef struct cg_webp_anim_writer cg_webp_anim_writer;

/* Starts an animated WebP of width x height frames (1 to CG_WEBP_ANIM_MAX_SIDE a side),
 * lossy at CG_WEBP_ANIM_QUALITY, written at the end to a temporary file next to `path`
 * (created now, so an unwritable folder fails here) and renamed into place. loop_count as
 * in cg_webp_anim_info (0 = forever, 1..CG_WEBP_ANIM_MAX_LOOP = that many times in all).
 * `alpha` nonzero: frames are given as RGBA and the alpha plane is kept, losslessly
 * (WebP's default for alpha), each frame coded whole (a libwebp bug garbles half-transparent
 * pixels in frames that code only what changed; webp_anim.c), which makes files larger;
 * zero: frames are RGB, each coded as the rectangle that changed, and the animation is
 * opaque once composited, though the file usually carries the VP8X alpha flag anyway
 * (libwebp codes unchanged pixels as transparent). The background colour stored is opaque
 * white (0xFFFFFFFF), which browsers ignore. Errors: CG_ERR_ARG
 * (null pointer, loop_count out of range), CG_ERR_LIMIT (size), CG_ERR_IO (the temporary
 * file), CG_ERR_NOMEM. */
cg_status cg_webp_anim_writer_open(cg_webp_anim_writer **out, const char *path, int width,
                                   int height, int loop_count, int alpha);
/* Encodes a frame and appends it, shown for duration_ms (clamped to 0 ..
 * CG_WEBP_ANIM_MAX_DURATION). `pixels` is RGB (width*height*3) for an opaque writer, RGBA
 * with straight alpha (width*height*4) for an alpha writer. Every frame given is kept with
 * its own duration, even one identical to the one before (which WebPAnimEncoder would
 * otherwise fold into the previous frame's duration). Memory grows only by the frame's
 * compressed size. Errors: CG_ERR_ARG (null), CG_ERR_LIMIT (more than 2^24 - 2 frames),
 * CG_ERR_NOMEM, CG_ERR_FORMAT (the encoder failed). */
cg_status cg_webp_anim_writer_add(cg_webp_anim_writer *w, const uint8_t *pixels, int duration_ms);
/* Assembles the file (at least one frame must have been added, else CG_ERR_ARG), writes
 * it and renames it into place; frees the writer whatever happens. Assembly holds about
 * twice the file's size in memory for a moment. A file of one frame is still an animation
 * (ANIM and ANMF chunks), so it reads back with this reader. */
cg_status cg_webp_anim_writer_finish(cg_webp_anim_writer *w);
/* Drops the file (nothing is left behind) and frees the writer; NULL does nothing. */
void cg_webp_anim_writer_abort(cg_webp_anim_writer *w);

#endif
