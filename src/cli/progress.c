/* progress.c: the terminal progress bar of progress.h. */
#include "cli/progress.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define BAR_MAX 30
#define REDRAW_INTERVAL 0.2 /* s: fast enough to look live, slow enough to cost nothing */

double progress_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void progress_init(progress *p, int total, const char *unit, const char *rate_unit,
                   int enabled) {
    p->enabled = enabled && isatty(STDERR_FILENO);
    p->total = total;
    p->done = 0;
    p->unit = unit;
    p->rate_unit = rate_unit;
    p->start = progress_now();
    p->last_draw = 0;
    p->visible = 0;
    p->label[0] = p->extra[0] = '\0';
    p->delay = 0;
}

void progress_set_delay(progress *p, double seconds) { p->delay = seconds; }

void progress_set_text(progress *p, const char *label, const char *extra) {
    if (label) snprintf(p->label, sizeof p->label, "%s", label);
    if (extra) snprintf(p->extra, sizeof p->extra, "%s", extra);
}

static void format_eta(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 99 * 3600.0) {
        snprintf(buf, n, "-:--");
        return;
    }
    long t = lround(s);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

static int terminal_columns(void) {
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    return 80;
}

static void draw(progress *p) {
    double elapsed = progress_now() - p->start;
    /* before anything has moved the rate is meaningless; show dashes, not "inf" */
    double rate = (p->done > 0 && elapsed > 0) ? p->done / elapsed : 0;
    char rate_s[32], eta_s[32];
    if (rate > 0) {
        snprintf(rate_s, sizeof rate_s, rate < 100 ? "%.1f" : "%.0f", rate);
        format_eta(eta_s, sizeof eta_s, (p->total - p->done) / rate);
    } else {
        snprintf(rate_s, sizeof rate_s, "--");
        snprintf(eta_s, sizeof eta_s, "-:--");
    }
    char tail[400];
    int whole = (int)p->done, tail_len;
    if (p->total == 1) { /* one item: how far into it, not a count of 0/1 */
        char el[32];
        format_eta(el, sizeof el, elapsed);
        tail_len = snprintf(tail, sizeof tail, "  %3d%%  %s elapsed  ETA %s%s%s",
                            (int)(100 * p->done), el, eta_s, p->extra[0] ? "  " : "", p->extra);
    } else {
        tail_len = snprintf(tail, sizeof tail, "  %d/%d %s  %s %s  ETA %s%s%s", whole, p->total,
                            p->unit, rate_s, p->rate_unit, eta_s, p->extra[0] ? "  " : "",
                            p->extra);
    }
    int cols = terminal_columns() - 1;
    if (tail_len > cols) tail[tail_len = cols > 0 ? cols : 0] = '\0'; /* a narrow terminal drops the end */
    char head[64];
    int head_len = snprintf(head, sizeof head, "%s%s", p->label, p->label[0] ? " " : "");
    /* the line must not wrap, or '\r' would redraw only its last row */
    int width = terminal_columns() - 1 - tail_len - head_len - 2;
    if (width > BAR_MAX) width = BAR_MAX;
    char line[BAR_MAX + 200];
    int k = 0;
    if (width >= 5) {
        int fill = p->total > 0 ? (int)(width * p->done / p->total) : 0;
        if (fill > width) fill = width;
        line[k++] = '[';
        for (int j = 0; j < width; j++) line[k++] = j < fill ? '#' : '.';
        line[k++] = ']';
    }
    line[k] = '\0';
    /* \033[K erases what a longer previous line left behind */
    fprintf(stderr, "\r%s%s%s\033[K", width >= 5 ? head : "", line, tail);
    fflush(stderr);
    p->visible = 1;
    p->last_draw = progress_now();
}

static void clear(progress *p) {
    if (!p->visible) return;
    fputs("\r\033[K", stderr);
    p->visible = 0;
}

void progress_update(progress *p, double done) {
    if (done > p->total) done = p->total;
    int crossed = (int)done != (int)p->done;
    p->done = done;
    if (!p->enabled) return;
    if (p->delay > 0 && progress_now() - p->start < p->delay) return;
    if (crossed || progress_now() - p->last_draw >= REDRAW_INTERVAL) draw(p);
}

void progress_message(progress *p, const char *fmt, ...) {
    clear(p);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (p->enabled && !(p->delay > 0 && progress_now() - p->start < p->delay)) draw(p);
    fflush(stderr);
}

void progress_finish(progress *p) {
    clear(p);
    fflush(stderr);
    p->enabled = 0;
}
