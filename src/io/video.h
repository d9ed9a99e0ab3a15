/* video.h: videos in and out through FFmpeg's libraries (libavformat, libavcodec,
 * libswscale). The reader decodes one frame at a time to RGB8 with its timestamp, turned
 * upright as the track says (phones' portrait videos), as photos get their EXIF turn; the
 * writer encodes RGB8 frames to H.264 (libx264, yuv420p) in an MP4 and can copy the input's
 * audio track packet for packet. Nothing holds more than a few frames, so memory does not
 * grow with the video's length. Errors go through cg_fail ("PATH: reason"); nothing exits,
 * and nothing is printed once cg_video_quiet_log() has been called. */
#ifndef CG_IO_VIDEO_H
#define CG_IO_VIDEO_H

#include <stdint.h>

#include "cartoongan.h"

typedef struct {
    int width, height;    /* of the frames cg_video_read gives: the coded size, turned as
                             the track says to show it (the sample aspect ratio is ignored) */
    int rotation;         /* the quarter turns (clockwise degrees) applied to each frame */
    int tb_num, tb_den;   /* the time base of their timestamps */
    int fps_num, fps_den; /* the average frame rate; 0/1 when the file does not say */
    int64_t frame_count;  /* frames the container declares, else an estimate from the
                             duration; 0 when unknown */
    int frame_count_exact; /* frame_count is the container's own count */
    char codec[32];       /* the video codec's name */
    int hdr;              /* 1 when the track's colour transfer is an HDR one: PQ (SMPTE ST
                             2084, as in HDR10) or HLG (ARIB STD-B67, phones' HDR video);
                             else 0. cg_video_read does not tone-map such frames: it converts
                             the coded values (any bit depth) to RGB8 with the track's matrix
                             as if they were SDR, leaving the transfer and the BT.2020
                             primaries as they are, so colours come out duller than on an HDR
                             screen (and PQ darker) */
    char transfer[16];    /* "PQ" or "HLG" when hdr, else "" (for messages) */
    int has_audio;        /* the file has an audio track ... */
    int audio_copyable;   /* ... that can be copied into an MP4 as it is */
    char audio_codec[32];
} cg_video_info;

typedef struct cg_video_reader cg_video_reader;
typedef struct cg_video_writer cg_video_writer;

/* FFmpeg logs to stderr by default; this silences it for the whole process (the library's
 * own errors still come through cg_last_error). */
void cg_video_quiet_log(void);

/* Opens a video: finds the video track (refusing a file with none, or whose codec has no
 * decoder here) and checks its size against max_pixels (0: CG_DEFAULT_MAX_PIXELS) before
 * any frame is decoded. */
cg_status cg_video_open(cg_video_reader **out, const char *path, uint64_t max_pixels);
const cg_video_info *cg_video_get_info(const cg_video_reader *r);

/* Stop after `n` frames (0: no limit, the default). Past the limit cg_video_read reports
 * the end; the audio copied stops where the last frame ends. */
void cg_video_set_max_frames(cg_video_reader *r, int64_t n);

/* Decodes the next frame into rgb (width*height*3). *got is 0 at the end. *pts and
 * *duration are in the time base (timestamps always increase; a missing duration is taken
 * from the frame rate). Audio packets met on the way are copied into every writer opened
 * with this reader as its audio source. A decoding error fails (a corrupt stream is not
 * papered over), as does a read error or a truncated packet. */
cg_status cg_video_read(cg_video_reader *r, uint8_t *rgb, int64_t *pts, int64_t *duration,
                        int *got);
/* After the end: whether frames were left over because of cg_video_set_max_frames. */
int cg_video_was_cut(const cg_video_reader *r);
void cg_video_close(cg_video_reader *r);

typedef struct {
    int width, height;    /* of the RGB frames given to cg_video_write; an odd side is cut
                             by one pixel (H.264 in yuv420p needs even sides), a side of 1
                             is doubled */
    int tb_num, tb_den;   /* the time base of the timestamps given to cg_video_write */
    int fps_num, fps_den; /* the nominal frame rate (for rate control and the file's
                             header); 0/0: one frame per time-base tick */
    cg_video_reader *audio_from; /* copy this reader's audio track (if it can be); or NULL */
} cg_video_writer_opts;

/* Starts an MP4 at a temporary name next to `path` (the muxer writes there; it is renamed
 * only by cg_video_writer_finish). */
cg_status cg_video_writer_open(cg_video_writer **out, const char *path,
                               const cg_video_writer_opts *o);
/* Encodes one RGB frame shown from pts for duration (in the writer's time base). */
cg_status cg_video_write(cg_video_writer *w, const uint8_t *rgb, int64_t pts, int64_t duration);
/* Flushes the encoder, ends the file and renames it into place; frees the writer. */
cg_status cg_video_writer_finish(cg_video_writer *w);
/* Drops the file (nothing is left behind) and frees the writer; NULL does nothing. */
void cg_video_writer_abort(cg_video_writer *w);

#endif
