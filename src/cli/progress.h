/* progress.h: a one-line progress bar on stderr, redrawn in place with '\r':
 *
 *     [#######.....]  3/10 images  0.8 img/s  ETA 0:09
 *
 * or, for a single item (one big image), "[#####.....]  45%  0:04 elapsed  ETA 0:05".
 * Used for images, frames and training steps: the caller names the unit. Messages printed through progress_message clear the bar first, so errors land on
 * their own line and the bar is redrawn below them. When disabled (not a terminal, --quiet,
 * a single item) nothing is drawn and progress_message just prints the line. */
#ifndef CG_CLI_PROGRESS_H
#define CG_CLI_PROGRESS_H

typedef struct {
    int enabled;
    int total;
    double done;           /* items finished, fractional while one is under way */
    const char *unit;      /* "images" */
    const char *rate_unit; /* "img/s" */
    double start;          /* seconds, monotonic */
    double last_draw;
    int visible;           /* a bar is on the line now */
    char label[48];        /* drawn before the bar ("gan epoch 3/100"), may be empty */
    char extra[160];       /* drawn after the ETA (the last losses), may be empty */
    double delay;          /* seconds after start before the bar is first drawn */
} progress;

/* Monotonic seconds, for timing runs. */
double progress_now(void);

/* `enabled` is the caller's choice (e.g. !quiet && total > 1); the bar is also off when
 * stderr is not a terminal. */
void progress_init(progress *p, int total, const char *unit, const char *rate_unit,
                   int enabled);
/* Sets how much is done (may be fractional); redraws at most a few times a second,
 * always when `done` reaches a whole number. */
void progress_update(progress *p, double done);
/* Draws nothing until `seconds` have passed since progress_init: work that ends sooner
 * leaves no trace. A bar of total 1 (one image) shows a percentage, elapsed time and ETA. */
void progress_set_delay(progress *p, double seconds);
/* Sets the label before the bar and the text after it (either may be NULL: unchanged). */
void progress_set_text(progress *p, const char *label, const char *extra);
/* Prints a line on stderr (a newline is added) without mangling the bar. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void progress_message(progress *p, const char *fmt, ...);
/* Removes the bar from the terminal (at the end of a run). */
void progress_finish(progress *p);

#endif
