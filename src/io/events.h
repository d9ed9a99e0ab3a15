/* events.h: TensorBoard event files, so training can log scalars (losses) and images
 * (sample cartoons) that TensorBoard shows. The file is what TensorFlow's summary writer
 * makes: TFRecord framing (length, masked CRC32C of it, an Event message, masked CRC32C
 * of that) in a file named events.out.tfevents.<unix seconds>.<hostname>.<pid>.<n>, whose
 * first record says "brain.Event:2". Point `tensorboard --logdir` at the directory.
 *
 * Records are buffered; cg_events_flush writes them out and fsyncs, so call it after each
 * logging step that should survive a crash and before cg_events_close (which cannot report
 * an error). Every failure is a cg_status with a one-line cg_last_error() naming the file;
 * nothing aborts. One cg_events must not be used by two threads at once. */
#ifndef CG_IO_EVENTS_H
#define CG_IO_EVENTS_H

#include <stdint.h>

#include "cartoongan.h"

typedef struct cg_events cg_events;

/* Creates `dir` (and its parents) and a new event file in it, never replacing an existing
 * one, and writes the file_version record. */
cg_status cg_events_open(cg_events **out, const char *dir);

/* A scalar: TensorBoard's Scalars tab plots `value` against `step` under `tag`. */
cg_status cg_events_scalar(cg_events *e, const char *tag, int64_t step, float value);

/* An image: packed RGB8, w*h*3 bytes, stored as a lossless PNG (Images tab). */
cg_status cg_events_image(cg_events *e, const char *tag, int64_t step, const uint8_t *rgb, int w,
                          int h);

/* Writes everything logged so far to the file and fsyncs it. */
cg_status cg_events_flush(cg_events *e);

/* Flushes and closes (errors are lost here: flush first to see them); NULL is a no-op. */
void cg_events_close(cg_events *e);

#endif
