/* video.c: the video reader and MP4 writer of video.h, on FFmpeg's libraries. The reader
 * also carries the input's audio packets over to the writers that copy them, holding each
 * back until the video has reached its time, so that a cut at a frame limit can end the
 * sound where the last frame ends. */
#include "io/video.h"

#include <errno.h>
#include <math.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/image.h"
#include "status.h"

#define MAX_SINKS 16      /* writers copying one reader's audio: a style each + comparison */
#define DURATION_RING 512 /* frames in flight in x264 (its lookahead) stay far below */
#define X264_PRESET "medium"
#define X264_CRF "18" /* visually lossless; files are small at cartoon sizes anyway */

/* FFmpeg 6 (libavutil 57.30) renamed AVFrame.pkt_duration to duration and deprecated the
 * old name, which -Werror would turn into a build failure there. */
#if LIBAVUTIL_VERSION_INT >= AV_VERSION_INT(57, 30, 100)
#define FRAME_DURATION(f) ((f)->duration)
#else
#define FRAME_DURATION(f) ((f)->pkt_duration)
#endif

struct cg_video_writer {
    cg_atomic_file file;
    AVFormatContext *oc;
    AVCodecContext *enc;
    AVStream *vst, *ast;
    AVFrame *yuv;
    AVPacket *pkt, *apkt;
    struct SwsContext *sws;
    int w, h, ew, eh; /* the frames given; the encoded picture (even sides) */
    uint8_t *pad;     /* a frame with a side of 1, doubled to 2 */
    cg_video_reader *reader;
    AVRational audio_tb_in;
    int64_t last_pts;
    int64_t nframes;
    /* pts -> duration of the frames in the encoder: x264 does not carry durations over to
     * its packets (which come out a lookahead later), and the MP4 needs the last one's */
    int64_t ring_pts[DURATION_RING], ring_dur[DURATION_RING];
    int64_t default_duration;
};

struct cg_video_reader {
    cg_video_info info;
    char *path;
    AVFormatContext *fmt;
    AVCodecContext *dec;
    int vidx, aidx; /* stream indices; aidx -1: no audio to copy */
    AVRational vtb, atb;
    AVPacket *pkt;
    AVFrame *frame, *rgb;
    struct SwsContext *sws;
    int sws_cs, sws_range; /* the colour details sws was last given */
    int rotation;          /* clockwise degrees (0, 90, 180, 270) to show frames upright */
    int flushed;           /* the demuxer is done and the decoder has been told */
    int finished, cut;
    int64_t max_frames, delivered;
    int64_t packets;            /* video packets read */
    int64_t last_pts, last_end; /* of the last frame handed out */
    int64_t default_duration;
    AVPacket **aq; /* audio read ahead of the video, oldest first */
    int aq_head, aq_n, aq_cap;
    cg_video_writer *sinks[MAX_SINKS];
    int nsinks;
};

static const char *av_text(int err, char *buf, size_t n) {
    if (err == AVERROR(ENOENT)) return "no such file or directory";
    if (av_strerror(err, buf, n) < 0) snprintf(buf, n, "error %d", err);
    return buf;
}

void cg_video_quiet_log(void) { av_log_set_level(AV_LOG_QUIET); }

static void format_pixels(char *buf, size_t n, uint64_t px) {
    if (px >= 1000000)
        snprintf(buf, n, "%.1f megapixels", (double)px / 1e6);
    else
        snprintf(buf, n, "%llu pixels", (unsigned long long)px);
}

/* ---- reader ---- */

static int is_attached_picture(const AVStream *st) {
    return (st->disposition & AV_DISPOSITION_ATTACHED_PIC) != 0;
}

/* How far the track asks players to turn its frames clockwise (phones film portrait
 * videos as landscape ones marked "turn 90 degrees"), rounded to a quarter turn. */
static int stream_rotation(const AVStream *st) {
#if LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(60, 29, 100) /* stream side data moved in FFmpeg 6.1 */
    const AVPacketSideData *sd = av_packet_side_data_get(
        st->codecpar->coded_side_data, st->codecpar->nb_coded_side_data, AV_PKT_DATA_DISPLAYMATRIX);
    const int32_t *m = sd && sd->size >= 36 ? (const int32_t *)sd->data : NULL;
#else
    size_t size = 0;
    const int32_t *m =
        (const int32_t *)av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size);
    if (size < 36) m = NULL;
#endif
    if (!m) return 0;
    double theta = -av_display_rotation_get(m); /* FFmpeg's angle is counterclockwise */
    if (theta != theta) return 0;               /* NaN: not a rotation */
    int q = (int)lround(theta / 90.0) % 4;
    return (q < 0 ? q + 4 : q) * 90;
}

/* The video track: FFmpeg's pick, unless that is a cover picture. */
static int find_video_stream(AVFormatContext *fmt) {
    int best = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    if (best >= 0 && !is_attached_picture(fmt->streams[best])) return best;
    for (unsigned i = 0; i < fmt->nb_streams; i++)
        if (fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_VIDEO &&
            !is_attached_picture(fmt->streams[i]))
            return (int)i;
    return -1;
}

static cg_status open_decoder(cg_video_reader *r, uint64_t max_pixels) {
    char e[AV_ERROR_MAX_STRING_SIZE];
    const char *path = r->path;
    int ret = avformat_open_input(&r->fmt, path, NULL, NULL);
    if (ret < 0) {
        if (ret == AVERROR(ENOENT) || ret == AVERROR(EACCES) || ret == AVERROR(EISDIR))
            return cg_fail(CG_ERR_IO, "%s: %s", path, av_text(ret, e, sizeof e));
        return cg_fail(CG_ERR_FORMAT, "%s: not a video file, or a corrupt one (%s)", path,
                       av_text(ret, e, sizeof e));
    }
    ret = avformat_find_stream_info(r->fmt, NULL);
    if (ret < 0)
        return cg_fail(CG_ERR_FORMAT, "%s: cannot read the video's streams (%s)", path,
                       av_text(ret, e, sizeof e));
    r->vidx = find_video_stream(r->fmt);
    if (r->vidx < 0) return cg_fail(CG_ERR_FORMAT, "%s: no video track in the file", path);
    AVStream *st = r->fmt->streams[r->vidx];
    const AVCodecParameters *par = st->codecpar;
    snprintf(r->info.codec, sizeof r->info.codec, "%s", avcodec_get_name(par->codec_id));
    /* From the track's parameters, which avformat_find_stream_info has filled from the
     * bitstream's own colour description when the container had none. */
    if (par->color_trc == AVCOL_TRC_SMPTE2084 || par->color_trc == AVCOL_TRC_ARIB_STD_B67) {
        r->info.hdr = 1;
        snprintf(r->info.transfer, sizeof r->info.transfer, "%s",
                 par->color_trc == AVCOL_TRC_SMPTE2084 ? "PQ" : "HLG");
    }
    const AVCodec *codec = avcodec_find_decoder(par->codec_id);
    if (!codec) {
        if (par->codec_id == AV_CODEC_ID_NONE && par->codec_tag) {
            char tag[AV_FOURCC_MAX_STRING_SIZE];
            av_fourcc_make_string(tag, par->codec_tag);
            return cg_fail(CG_ERR_FORMAT, "%s: unsupported video codec (unknown fourcc '%s')", path,
                           tag);
        }
        return cg_fail(CG_ERR_FORMAT, "%s: unsupported video codec %s (no decoder for it)", path,
                       r->info.codec);
    }
    if (par->width <= 0 || par->height <= 0)
        return cg_fail(CG_ERR_FORMAT, "%s: the video track has no picture size", path);
    uint64_t px = (uint64_t)par->width * (uint64_t)par->height;
    if (px > max_pixels) {
        char have[48], lim[48];
        format_pixels(have, sizeof have, px);
        format_pixels(lim, sizeof lim, max_pixels);
        return cg_fail(CG_ERR_LIMIT, "%s: video is %dx%d (%s), over the limit of %s", path,
                       par->width, par->height, have, lim);
    }
    r->dec = avcodec_alloc_context3(codec);
    if (!r->dec) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    ret = avcodec_parameters_to_context(r->dec, par);
    if (ret < 0)
        return cg_fail(CG_ERR_FORMAT, "%s: cannot set up the %s decoder (%s)", path, r->info.codec,
                       av_text(ret, e, sizeof e));
    r->dec->pkt_timebase = st->time_base;
    r->dec->thread_count = 1; /* the network is the bottleneck; one thread keeps it simple */
    /* a damaged stream is an error to report, not something to conceal */
    r->dec->err_recognition |= AV_EF_EXPLODE;
    /* frames larger than the header said are refused by the decoder itself */
    r->dec->max_pixels = (int64_t)(max_pixels > INT64_MAX ? INT64_MAX : max_pixels);
    ret = avcodec_open2(r->dec, codec, NULL);
    if (ret < 0)
        return cg_fail(CG_ERR_FORMAT, "%s: cannot decode %s video (%s)", path, r->info.codec,
                       av_text(ret, e, sizeof e));

    r->vtb = st->time_base;
    r->rotation = stream_rotation(st);
    r->info.rotation = r->rotation;
    r->info.width = r->rotation % 180 ? par->height : par->width;
    r->info.height = r->rotation % 180 ? par->width : par->height;
    r->info.tb_num = st->time_base.num;
    r->info.tb_den = st->time_base.den;
    AVRational fps = av_guess_frame_rate(r->fmt, st, NULL);
    if (fps.num > 0 && fps.den > 0) {
        r->info.fps_num = fps.num;
        r->info.fps_den = fps.den;
        r->default_duration = av_rescale_q(1, av_inv_q(fps), st->time_base);
    } else {
        r->info.fps_num = 0;
        r->info.fps_den = 1;
    }
    if (r->default_duration < 1) r->default_duration = 1;
    if (st->nb_frames > 0) {
        r->info.frame_count = st->nb_frames;
        r->info.frame_count_exact = 1;
    } else if (fps.num > 0 && fps.den > 0) {
        double seconds = st->duration != AV_NOPTS_VALUE ? st->duration * av_q2d(st->time_base)
                         : r->fmt->duration != AV_NOPTS_VALUE
                             ? r->fmt->duration / (double)AV_TIME_BASE
                             : 0;
        r->info.frame_count = (int64_t)(seconds * av_q2d(fps) + 0.5);
    }

    int a = av_find_best_stream(r->fmt, AVMEDIA_TYPE_AUDIO, -1, r->vidx, NULL, 0);
    if (a >= 0) {
        const AVCodecParameters *apar = r->fmt->streams[a]->codecpar;
        r->info.has_audio = 1;
        snprintf(r->info.audio_codec, sizeof r->info.audio_codec, "%s",
                 avcodec_get_name(apar->codec_id));
        const AVOutputFormat *mp4 = av_guess_format("mp4", NULL, NULL);
        if (mp4 && avformat_query_codec(mp4, apar->codec_id, FF_COMPLIANCE_NORMAL) == 1) {
            r->info.audio_copyable = 1;
            r->aidx = a;
            r->atb = r->fmt->streams[a]->time_base;
        }
    }
    r->pkt = av_packet_alloc();
    r->frame = av_frame_alloc();
    r->rgb = av_frame_alloc();
    if (!r->pkt || !r->frame || !r->rgb) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    r->rgb->format = AV_PIX_FMT_RGB24;
    r->rgb->width = par->width; /* as coded: turned upright when copied out */
    r->rgb->height = par->height;
    if (av_frame_get_buffer(r->rgb, 0) < 0)
        return cg_fail(CG_ERR_NOMEM, "%s: out of memory for %dx%d frames", path, r->info.width,
                       r->info.height);
    return CG_OK;
}

cg_status cg_video_open(cg_video_reader **out, const char *path, uint64_t max_pixels) {
    if (!out || !path) return cg_fail(CG_ERR_ARG, "cg_video_open: null argument");
    *out = NULL;
    if (!max_pixels) max_pixels = CG_DEFAULT_MAX_PIXELS;
    cg_video_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        free(r);
        return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    }
    r->vidx = r->aidx = -1;
    r->sws_cs = r->sws_range = -1;
    cg_status s = open_decoder(r, max_pixels);
    if (s != CG_OK) {
        cg_video_close(r);
        return s;
    }
    *out = r;
    return CG_OK;
}

const cg_video_info *cg_video_get_info(const cg_video_reader *r) { return &r->info; }

void cg_video_set_max_frames(cg_video_reader *r, int64_t n) { r->max_frames = n > 0 ? n : 0; }

int cg_video_was_cut(const cg_video_reader *r) { return r->cut; }

static cg_status writer_put_audio(cg_video_writer *w, const AVPacket *in);

/* When an audio packet starts, in the video's time base (INT64_MIN: unknown). */
static int64_t audio_start(const cg_video_reader *r, const AVPacket *p) {
    int64_t t = p->pts != AV_NOPTS_VALUE ? p->pts : p->dts;
    return t == AV_NOPTS_VALUE ? INT64_MIN : av_rescale_q(t, r->atb, r->vtb);
}

static cg_status queue_audio(cg_video_reader *r, AVPacket *p) {
    if (r->nsinks == 0) {
        av_packet_unref(p);
        return CG_OK;
    }
    if (r->aq_n == r->aq_cap) {
        int cap = r->aq_cap ? 2 * r->aq_cap : 64;
        AVPacket **q = malloc((size_t)cap * sizeof *q);
        if (!q) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", r->path);
        for (int i = 0; i < r->aq_n; i++) q[i] = r->aq[(r->aq_head + i) % r->aq_cap];
        free(r->aq);
        r->aq = q;
        r->aq_head = 0;
        r->aq_cap = cap;
    }
    AVPacket *copy = av_packet_alloc();
    if (!copy) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", r->path);
    av_packet_move_ref(copy, p);
    r->aq[(r->aq_head + r->aq_n) % r->aq_cap] = copy;
    r->aq_n++;
    return CG_OK;
}

/* Copies the queued audio that starts before `until` (video time base) into the writers;
 * with `drop_rest`, what is left is thrown away. */
static cg_status flush_audio(cg_video_reader *r, int64_t until, int drop_rest) {
    cg_status s = CG_OK;
    while (r->aq_n > 0) {
        AVPacket *p = r->aq[r->aq_head];
        int64_t t = audio_start(r, p);
        int send = t == INT64_MIN || t < until;
        if (!send && !drop_rest) break;
        for (int i = 0; send && s == CG_OK && i < r->nsinks; i++)
            s = writer_put_audio(r->sinks[i], p);
        av_packet_free(&p);
        r->aq_head = (r->aq_head + 1) % r->aq_cap;
        r->aq_n--;
        if (s != CG_OK) return s;
    }
    return s;
}

static int sws_colorspace(int spc, int height) {
    switch (spc) {
    case AVCOL_SPC_BT709: return SWS_CS_ITU709;
    case AVCOL_SPC_FCC: return SWS_CS_FCC;
    case AVCOL_SPC_SMPTE240M: return SWS_CS_SMPTE240M;
    case AVCOL_SPC_BT2020_NCL:
    case AVCOL_SPC_BT2020_CL: return SWS_CS_BT2020;
    case AVCOL_SPC_BT470BG:
    case AVCOL_SPC_SMPTE170M: return SWS_CS_ITU601;
    default: return height >= 720 ? SWS_CS_ITU709 : SWS_CS_ITU601; /* what players assume */
    }
}

static int full_range(const AVFrame *f) {
    switch (f->format) {
    case AV_PIX_FMT_YUVJ420P:
    case AV_PIX_FMT_YUVJ422P:
    case AV_PIX_FMT_YUVJ444P:
    case AV_PIX_FMT_YUVJ440P:
    case AV_PIX_FMT_YUVJ411P: return 1;
    default: return f->color_range == AVCOL_RANGE_JPEG;
    }
}

/* The decoded frame, converted to RGB8 at the size the header gave (a stream that changes
 * size midway is scaled back to it) and turned upright. */
static cg_status frame_to_rgb(cg_video_reader *r, uint8_t *rgb) {
    const AVFrame *f = r->frame;
    const int W = r->rgb->width, H = r->rgb->height; /* as coded */
    r->sws = sws_getCachedContext(
        r->sws, f->width, f->height, (enum AVPixelFormat)f->format, W, H, AV_PIX_FMT_RGB24,
        SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, NULL, NULL, NULL);
    if (!r->sws)
        return cg_fail(CG_ERR_FORMAT, "%s: cannot convert %s frames to RGB", r->path,
                       av_get_pix_fmt_name((enum AVPixelFormat)f->format));
    int cs = sws_colorspace(f->colorspace, f->height), range = full_range(f);
    if (cs != r->sws_cs || range != r->sws_range) {
        sws_setColorspaceDetails(r->sws, sws_getCoefficients(cs), range,
                                 sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
        r->sws_cs = cs;
        r->sws_range = range;
    }
    sws_scale(r->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, r->rgb->data,
              r->rgb->linesize);
    const uint8_t *src = r->rgb->data[0];
    const size_t ls = (size_t)r->rgb->linesize[0];
    if (r->rotation == 0) {
        for (int y = 0; y < H; y++) memcpy(rgb + (size_t)y * W * 3, src + y * ls, (size_t)W * 3);
        return CG_OK;
    }
    /* out(x, y) for an output of OW x OH: 90 takes in(y, H-1-x), 180 in(W-1-x, H-1-y),
     * 270 in(W-1-y, x) */
    const int OW = r->info.width, OH = r->info.height;
    for (int y = 0; y < OH; y++) {
        uint8_t *d = rgb + (size_t)y * OW * 3;
        for (int x = 0; x < OW; x++, d += 3) {
            int sx = r->rotation == 90 ? y : W - 1 - (r->rotation == 180 ? x : y);
            int sy = r->rotation == 90 ? H - 1 - x : r->rotation == 180 ? H - 1 - y : x;
            memcpy(d, src + sy * ls + (size_t)sx * 3, 3);
        }
    }
    return CG_OK;
}

static cg_status decode_fail(cg_video_reader *r, int err) {
    char e[AV_ERROR_MAX_STRING_SIZE];
    return cg_fail(CG_ERR_FORMAT, "%s: corrupt video stream at frame %lld (%s)", r->path,
                   (long long)r->delivered + 1, av_text(err, e, sizeof e));
}

/* Reads one packet: video goes to the decoder, audio to the queue. Returns 0, 1 at the end
 * of the file (the decoder is then flushed), or -1 after cg_fail. */
static int feed(cg_video_reader *r, int decode) {
    char e[AV_ERROR_MAX_STRING_SIZE];
    int ret = av_read_frame(r->fmt, r->pkt);
    if (ret == AVERROR_EOF) {
        /* MP4 and MOV index every frame up front, and a file cut short just reads as
         * ending early; the index says how many there should have been */
        if (r->info.frame_count_exact && r->packets < r->info.frame_count) {
            cg_fail(CG_ERR_FORMAT,
                    "%s: truncated video: the file ends after %lld of its %lld frames", r->path,
                    (long long)r->packets, (long long)r->info.frame_count);
            return -1;
        }
        if (decode) avcodec_send_packet(r->dec, NULL);
        r->flushed = 1;
        return 1;
    }
    if (ret < 0) {
        cg_fail(CG_ERR_FORMAT, "%s: cannot read the video after frame %lld (%s)", r->path,
                (long long)r->delivered, av_text(ret, e, sizeof e));
        return -1;
    }
    if (r->pkt->stream_index == r->aidx) return queue_audio(r, r->pkt) == CG_OK ? 0 : -1;
    if (r->pkt->stream_index != r->vidx) {
        av_packet_unref(r->pkt);
        return 0;
    }
    r->packets++;
    if (r->pkt->flags & AV_PKT_FLAG_CORRUPT) {
        av_packet_unref(r->pkt);
        cg_fail(CG_ERR_FORMAT, "%s: corrupt or truncated video stream at frame %lld", r->path,
                (long long)r->delivered + 1);
        return -1;
    }
    if (!decode) { /* past the frame limit: only noting that more video was there */
        r->cut = 1;
        av_packet_unref(r->pkt);
        return 0;
    }
    ret = avcodec_send_packet(r->dec, r->pkt);
    av_packet_unref(r->pkt);
    if (ret < 0 && ret != AVERROR(EAGAIN)) {
        decode_fail(r, ret);
        return -1;
    }
    return 0;
}

/* At the frame limit: finds out whether video was left over, and copies the audio up to
 * where the last frame ends. */
static cg_status finish_cut(cg_video_reader *r) {
    if (avcodec_receive_frame(r->dec, r->frame) == 0) {
        r->cut = 1;
        av_frame_unref(r->frame);
    }
    /* keep reading until both questions are answered: more video? all of the audio up to
     * the end? (the queue's last packet tells the latter) */
    while (!r->flushed) {
        int audio_done =
            r->nsinks == 0 || r->aidx < 0 ||
            (r->aq_n > 0 &&
             audio_start(r, r->aq[(r->aq_head + r->aq_n - 1) % r->aq_cap]) >= r->last_end);
        if (r->cut && audio_done) break;
        if (feed(r, 0) < 0) return CG_ERR_FORMAT;
    }
    if (!r->cut) { /* the decoder may still hold frames it was given before */
        avcodec_send_packet(r->dec, NULL);
        if (avcodec_receive_frame(r->dec, r->frame) == 0) {
            r->cut = 1;
            av_frame_unref(r->frame);
        }
    }
    return flush_audio(r, r->last_end, 1);
}

cg_status cg_video_read(cg_video_reader *r, uint8_t *rgb, int64_t *pts, int64_t *duration,
                        int *got) {
    if (!r || !rgb || !got) return cg_fail(CG_ERR_ARG, "cg_video_read: null argument");
    *got = 0;
    if (r->finished) return CG_OK;
    if (r->max_frames && r->delivered >= r->max_frames) {
        r->finished = 1;
        return finish_cut(r);
    }
    for (;;) {
        int ret = avcodec_receive_frame(r->dec, r->frame);
        if (ret == AVERROR_EOF) {
            r->finished = 1;
            return flush_audio(r, INT64_MAX, 0);
        }
        if (ret == AVERROR(EAGAIN)) {
            if (r->flushed) { /* cannot happen after a flush; stop rather than spin */
                r->finished = 1;
                return flush_audio(r, INT64_MAX, 0);
            }
            if (feed(r, 1) < 0) return CG_ERR_FORMAT;
            continue;
        }
        if (ret < 0) return decode_fail(r, ret);
        break;
    }
    cg_status s = CG_OK;
    if (r->frame->decode_error_flags || (r->frame->flags & AV_FRAME_FLAG_CORRUPT))
        s = cg_fail(CG_ERR_FORMAT, "%s: corrupt video stream at frame %lld", r->path,
                    (long long)r->delivered + 1);
    if (s == CG_OK) s = frame_to_rgb(r, rgb);
    if (s == CG_OK) {
        int64_t t = r->frame->best_effort_timestamp;
        if (t == AV_NOPTS_VALUE) t = r->delivered ? r->last_end : 0;
        if (r->delivered && t <= r->last_pts) t = r->last_pts + 1;
        int64_t d = FRAME_DURATION(r->frame) > 0 ? FRAME_DURATION(r->frame) : r->default_duration;
        r->last_pts = t;
        r->last_end = t + d;
        r->delivered++;
        *pts = t;
        *duration = d;
        *got = 1;
        s = flush_audio(r, r->last_end, 0);
    }
    av_frame_unref(r->frame);
    return s;
}

void cg_video_close(cg_video_reader *r) {
    if (!r) return;
    for (int i = 0; i < r->nsinks; i++) r->sinks[i]->reader = NULL;
    while (r->aq_n > 0) {
        av_packet_free(&r->aq[r->aq_head]);
        r->aq_head = (r->aq_head + 1) % r->aq_cap;
        r->aq_n--;
    }
    free(r->aq);
    sws_freeContext(r->sws);
    av_frame_free(&r->frame);
    av_frame_free(&r->rgb);
    av_packet_free(&r->pkt);
    avcodec_free_context(&r->dec);
    avformat_close_input(&r->fmt);
    free(r->path);
    free(r);
}

/* ---- writer ---- */

static cg_status writer_error(const cg_video_writer *w, const char *what, int err) {
    char e[AV_ERROR_MAX_STRING_SIZE];
    return cg_fail(err == AVERROR(ENOMEM) ? CG_ERR_NOMEM : CG_ERR_IO, "%s: %s (%s)", w->file.path,
                   what, av_text(err, e, sizeof e));
}

static void unregister(cg_video_writer *w) {
    cg_video_reader *r = w->reader;
    if (!r) return;
    for (int i = 0; i < r->nsinks; i++)
        if (r->sinks[i] == w) {
            r->sinks[i] = r->sinks[--r->nsinks];
            break;
        }
    w->reader = NULL;
}

static void writer_free(cg_video_writer *w) {
    unregister(w);
    if (w->oc) {
        if (w->oc->pb) avio_closep(&w->oc->pb);
        avformat_free_context(w->oc);
    }
    avcodec_free_context(&w->enc);
    av_frame_free(&w->yuv);
    av_packet_free(&w->pkt);
    av_packet_free(&w->apkt);
    sws_freeContext(w->sws);
    free(w->pad);
    free(w);
}

static cg_status setup_writer(cg_video_writer *w, const cg_video_writer_opts *o) {
    char e[AV_ERROR_MAX_STRING_SIZE];
    const char *path = w->file.path;
    int ret = avformat_alloc_output_context2(&w->oc, NULL, "mp4", w->file.tmp);
    if (ret < 0 || !w->oc)
        return cg_fail(CG_ERR_NOMEM, "%s: cannot start an MP4 (%s)", path,
                       av_text(ret, e, sizeof e));
    const AVCodec *codec = avcodec_find_encoder_by_name("libx264");
    if (!codec) return cg_fail(CG_ERR_FORMAT, "%s: this FFmpeg has no libx264 H.264 encoder", path);
    w->vst = avformat_new_stream(w->oc, NULL);
    w->enc = avcodec_alloc_context3(codec);
    w->pkt = av_packet_alloc();
    w->apkt = av_packet_alloc();
    w->yuv = av_frame_alloc();
    if (!w->vst || !w->enc || !w->pkt || !w->apkt || !w->yuv)
        return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);

    AVRational tb = {o->tb_num, o->tb_den};
    AVRational fps =
        o->fps_num > 0 && o->fps_den > 0 ? (AVRational){o->fps_num, o->fps_den} : av_inv_q(tb);
    AVCodecContext *enc = w->enc;
    enc->width = w->ew;
    enc->height = w->eh;
    enc->pix_fmt = AV_PIX_FMT_YUV420P;
    enc->time_base = tb;
    enc->framerate = fps;
    enc->sample_aspect_ratio = (AVRational){1, 1};
    /* what the RGB -> YUV conversion below does, said in the stream for players */
    enc->colorspace = AVCOL_SPC_SMPTE170M;
    enc->color_range = AVCOL_RANGE_MPEG;
    enc->thread_count = 1; /* deterministic output, and the network dwarfs encoding */
    /* No B-frames: with them, x264's decode timestamps for uneven frame times (GIF
     * delays) make the MP4's sample durations disagree with its edit list, and tools then
     * differ on how long the video is; without, every reader sees the exact timing. */
    enc->max_b_frames = 0;
    if (w->oc->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    av_opt_set(enc->priv_data, "preset", X264_PRESET, 0);
    av_opt_set(enc->priv_data, "crf", X264_CRF, 0);
    ret = avcodec_open2(enc, codec, NULL);
    if (ret < 0)
        return cg_fail(CG_ERR_FORMAT, "%s: cannot start the H.264 encoder for %dx%d (%s)", path,
                       w->ew, w->eh, av_text(ret, e, sizeof e));
    ret = avcodec_parameters_from_context(w->vst->codecpar, enc);
    if (ret < 0) return writer_error(w, "cannot set up the video track", ret);
    w->vst->time_base = tb;
    w->vst->avg_frame_rate = fps;
    w->default_duration = av_rescale_q(1, av_inv_q(fps), tb);
    if (w->default_duration < 1) w->default_duration = 1;

    cg_video_reader *r = o->audio_from;
    if (r && r->aidx >= 0) {
        if (r->nsinks == MAX_SINKS)
            return cg_fail(CG_ERR_ARG, "%s: too many writers copying %s's audio", path, r->path);
        const AVStream *in = r->fmt->streams[r->aidx];
        w->ast = avformat_new_stream(w->oc, NULL);
        if (!w->ast) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
        ret = avcodec_parameters_copy(w->ast->codecpar, in->codecpar);
        if (ret < 0) return writer_error(w, "cannot set up the audio track", ret);
        w->ast->codecpar->codec_tag = 0; /* the input container's tag may mean nothing in MP4 */
        w->ast->time_base = in->time_base;
        w->audio_tb_in = in->time_base;
    }

    ret = avio_open(&w->oc->pb, w->file.tmp, AVIO_FLAG_WRITE);
    if (ret < 0) return writer_error(w, "cannot write", ret);
    AVDictionary *mux = NULL;
    /* the index goes first, so the file plays while it downloads (what sharing needs) */
    av_dict_set(&mux, "movflags", "+faststart", 0);
    ret = avformat_write_header(w->oc, &mux);
    av_dict_free(&mux);
    if (ret < 0) return writer_error(w, "cannot write the MP4 header", ret);

    w->yuv->format = AV_PIX_FMT_YUV420P;
    w->yuv->width = w->ew;
    w->yuv->height = w->eh;
    if (av_frame_get_buffer(w->yuv, 0) < 0) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    w->sws = sws_getContext(w->ew, w->eh, AV_PIX_FMT_RGB24, w->ew, w->eh, AV_PIX_FMT_YUV420P,
                            SWS_BICUBIC | SWS_ACCURATE_RND, NULL, NULL, NULL);
    if (!w->sws) return cg_fail(CG_ERR_NOMEM, "%s: cannot set up the RGB to YUV conversion", path);
    sws_setColorspaceDetails(w->sws, sws_getCoefficients(SWS_CS_DEFAULT), 1,
                             sws_getCoefficients(SWS_CS_ITU601), 0, 0, 1 << 16, 1 << 16);
    if (w->ew > w->w || w->eh > w->h) {
        w->pad = malloc((size_t)w->ew * w->eh * 3);
        if (!w->pad) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    }
    if (r && w->ast) {
        r->sinks[r->nsinks++] = w;
        w->reader = r;
    }
    return CG_OK;
}

cg_status cg_video_writer_open(cg_video_writer **out, const char *path,
                               const cg_video_writer_opts *o) {
    if (!out || !path || !o) return cg_fail(CG_ERR_ARG, "cg_video_writer_open: null argument");
    *out = NULL;
    if (o->width < 1 || o->height < 1 || o->tb_num < 1 || o->tb_den < 1)
        return cg_fail(CG_ERR_ARG, "%s: bad video size %dx%d or time base %d/%d", path, o->width,
                       o->height, o->tb_num, o->tb_den);
    cg_video_writer *w = calloc(1, sizeof *w);
    if (!w) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    w->w = o->width;
    w->h = o->height;
    w->ew = o->width >= 2 ? o->width & ~1 : 2;
    w->eh = o->height >= 2 ? o->height & ~1 : 2;
    w->last_pts = INT64_MIN;
    for (int i = 0; i < DURATION_RING; i++) w->ring_pts[i] = AV_NOPTS_VALUE;
    cg_status s = cg_atomic_begin(&w->file, path);
    if (s != CG_OK) {
        free(w);
        return s;
    }
    /* The muxer opens the file by name (it reopens it to move the index to the front);
     * file.fd stays open all along, as the flock on it marks the file as being written. */
    s = setup_writer(w, o);
    if (s != CG_OK) {
        cg_video_writer_abort(w);
        return s;
    }
    *out = w;
    return CG_OK;
}

static cg_status writer_put_audio(cg_video_writer *w, const AVPacket *in) {
    int ret = av_packet_ref(w->apkt, in);
    if (ret < 0) return writer_error(w, "cannot copy the audio", ret);
    av_packet_rescale_ts(w->apkt, w->audio_tb_in, w->ast->time_base);
    w->apkt->stream_index = w->ast->index;
    w->apkt->pos = -1;
    ret = av_interleaved_write_frame(w->oc, w->apkt); /* takes the reference */
    if (ret < 0) return writer_error(w, "cannot write the audio", ret);
    return CG_OK;
}

static int64_t ring_duration(const cg_video_writer *w, int64_t pts) {
    for (int i = 0; i < DURATION_RING; i++)
        if (w->ring_pts[i] == pts) return w->ring_dur[i];
    return w->default_duration;
}

/* Writes the packets the encoder has ready. */
static cg_status drain(cg_video_writer *w) {
    for (;;) {
        int ret = avcodec_receive_packet(w->enc, w->pkt);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return CG_OK;
        if (ret < 0) return writer_error(w, "H.264 encoding failed", ret);
        w->pkt->duration = ring_duration(w, w->pkt->pts);
        av_packet_rescale_ts(w->pkt, w->enc->time_base, w->vst->time_base);
        w->pkt->stream_index = w->vst->index;
        ret = av_interleaved_write_frame(w->oc, w->pkt);
        if (ret < 0) return writer_error(w, "cannot write", ret);
    }
}

cg_status cg_video_write(cg_video_writer *w, const uint8_t *rgb, int64_t pts, int64_t duration) {
    if (!w || !rgb) return cg_fail(CG_ERR_ARG, "cg_video_write: null argument");
    const uint8_t *src = rgb;
    int stride = w->w * 3;
    if (w->pad) {
        for (int y = 0; y < w->eh; y++) {
            const uint8_t *row = rgb + (size_t)(y < w->h ? y : w->h - 1) * w->w * 3;
            uint8_t *d = w->pad + (size_t)y * w->ew * 3;
            for (int x = 0; x < w->ew; x++)
                memcpy(d + 3 * x, row + 3 * (x < w->w ? x : w->w - 1), 3);
        }
        src = w->pad;
        stride = w->ew * 3;
    }
    int ret = av_frame_make_writable(w->yuv);
    if (ret < 0) return writer_error(w, "out of memory", ret);
    /* an odd side is cut by one pixel simply by converting ew x eh of the w x h frame */
    sws_scale(w->sws, &src, &stride, 0, w->eh, w->yuv->data, w->yuv->linesize);
    if (pts <= w->last_pts) pts = w->last_pts + 1; /* x264 refuses timestamps that go back */
    w->last_pts = pts;
    if (duration < 1) duration = w->default_duration;
    w->yuv->pts = pts;
    FRAME_DURATION(w->yuv) = duration;
    w->ring_pts[w->nframes % DURATION_RING] = pts;
    w->ring_dur[w->nframes % DURATION_RING] = duration;
    w->nframes++;
    ret = avcodec_send_frame(w->enc, w->yuv);
    if (ret < 0) return writer_error(w, "H.264 encoding failed", ret);
    return drain(w);
}

cg_status cg_video_writer_finish(cg_video_writer *w) {
    if (!w) return cg_fail(CG_ERR_ARG, "cg_video_writer_finish: null writer");
    unregister(w);
    int ret = avcodec_send_frame(w->enc, NULL);
    cg_status s = ret < 0 ? writer_error(w, "H.264 encoding failed", ret) : drain(w);
    if (s == CG_OK && w->nframes == 0)
        s = cg_fail(CG_ERR_FORMAT, "%s: no frames to write", w->file.path);
    if (s == CG_OK && (ret = av_write_trailer(w->oc)) < 0)
        s = writer_error(w, "cannot finish the MP4", ret);
    if (s == CG_OK && (ret = avio_closep(&w->oc->pb)) < 0) s = writer_error(w, "cannot write", ret);
    if (s == CG_OK)
        s = cg_atomic_commit(&w->file);
    else
        cg_atomic_abort(&w->file);
    writer_free(w);
    return s;
}

void cg_video_writer_abort(cg_video_writer *w) {
    if (!w) return;
    unregister(w);
    if (w->oc && w->oc->pb) avio_closep(&w->oc->pb);
    cg_atomic_abort(&w->file);
    writer_free(w);
}
