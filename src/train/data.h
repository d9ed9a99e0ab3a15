/* data.h: the training data pipeline. A loader lists a folder of images and prepares
 * batches of random crops in G's input convention on background threads, so that the
 * trainer never waits on decoding. Every batch is a pure function of (the folder's sorted
 * file list, seed, stream, batch index), so a run resumed at batch k sees exactly what an
 * unbroken run saw, whatever the number of threads.
 *
 *     cg_loader *l;
 *     if (cg_loader_open(&l, "dataset/trainA", 8, 256, seed, 0, 4, 8) != CG_OK) fail(cg_last_error());
 *     cg_loader_set_warn(l, print_warning, NULL);
 *     for (long k = start; k < steps; k++) cg_loader_next(l, k, photo, NULL);   photo: [8][3][256][256]
 *     cg_loader_close(l);
 *
 * The stream. The listed files (n of them) are numbered 0..n-1 in name order. The stream
 * is the concatenation of one permutation of 0..n-1 per epoch (epoch e's permutation is a
 * Fisher-Yates shuffle driven by hash(seed, stream, e)); position p of the stream is
 * element p % n of epoch p / n's permutation. Batch k is positions [k*batch, (k+1)*batch),
 * so an epoch's last short batch simply continues into the next epoch's order.
 *
 * One image (stream position p): its random numbers come from hash(seed, stream, p), drawn
 * in this order: the crop's width and height, each round(size * U(0.9, 1.1)) independently,
 * then each clipped to the image; the crop's left and top, uniform over the positions that
 * keep it inside the image; a left-right flip with probability 1/2. The crop is flipped,
 * resized to size x size with cg_resize_rgb (antialiased Lanczos-3) and stored as BGR
 * floats x / 127.5 - 1, i.e. in [-1, 1], planar [3][size][size].
 *
 * Two loaders with the same seed and stream over folders of identically named images of
 * the same sizes take the same files and the same crops at every position (e.g. cartoons
 * and their edge-smoothed copies); different streams give independent orders.
 *
 * Bad files. A file that fails to decode (or has more than CG_LOADER_MAX_PIXELS pixels) is
 * skipped: its position takes the file at the next stream position that decodes (with
 * position p's random numbers), so batches stay a pure function of the inputs as long as
 * the files do not change. Each bad file is reported once, as is each image smaller than
 * the crop (either side under `size`), which is upscaled. */
#ifndef CG_TRAIN_DATA_H
#define CG_TRAIN_DATA_H

#include <stdint.h>

#include "cartoongan.h"

/* Images with more pixels than this are treated as bad files (40 megapixels). */
#define CG_LOADER_MAX_PIXELS (40ull * 1000 * 1000)
/* Limits on the open arguments, so that a typo cannot ask for absurd memory or threads. */
#define CG_LOADER_MAX_THREADS 256
#define CG_LOADER_MAX_PREFETCH 256
#define CG_LOADER_MAX_SIZE 8192

typedef struct cg_loader cg_loader;

/* Lists the images of `dir`: regular files (or links to them) named .jpg .jpeg .png .webp
 * in any case, not hidden (no leading '.'), not in subfolders, sorted by name (strcmp).
 * Starts `threads` (1..256) background threads that prepare up to `prefetch` (1..256)
 * batches ahead, beginning with batch 0 (see cg_loader_next for starting elsewhere).
 * `batch` >= 1 images per batch, `size` (1..8192) pixels square. Memory: prefetch buffers
 * of batch*3*size*size floats, plus per thread one decoded image and one epoch
 * permutation or two (4 bytes per file); the dataset is never held in memory.
 * Errors: CG_ERR_ARG for a bad argument; CG_ERR_IO "DIR: no such folder" (or "DIR: cannot
 * read: reason", "DIR: not a folder"); CG_ERR_ARG "DIR: no images (.jpg .jpeg .png .webp)"
 * (noting how many other files are there, if any), for the caller to complete with what
 * belongs in the folder; CG_ERR_NOMEM. *out is NULL on failure. */
cg_status cg_loader_open(cg_loader **out, const char *dir, int batch, int size, uint64_t seed,
                         int stream, int threads, int prefetch);

/* Data-parallel training: makes batch k the stream positions first + k * stride + i, i in
 * [0, batch), instead of k * batch + i. Process r of K, each of batch B, taking its slice
 * of a global batch of K B from stream position P on: first = P + r B, stride = K B, so
 * the global batch of every step is the same images in the same order whatever K.
 * What was prefetched is dropped and the workers restart at batch 0 of the slice.
 * CG_ERR_ARG for stride < batch or a negative first. */
cg_status cg_loader_set_slice(cg_loader *l, int64_t first, int stride);

/* Number of images listed. */
int cg_loader_count(const cg_loader *l);

/* Warnings: fn(user, msg) gets one line per bad file ("FILE: skipped: reason") and per
 * small file ("FILE: 180x120 is smaller than the 256-pixel crop; upscaled"), each file at
 * most once per loader. Workers queue them; they are delivered from cg_loader_next, on the
 * caller's thread, before it returns (so fn need not be thread-safe). Messages queued
 * while no callback is set are dropped at the next cg_loader_next. Set it right after open. */
typedef void (*cg_loader_warn_fn)(void *user, const char *msg);
void cg_loader_set_warn(cg_loader *l, cg_loader_warn_fn fn, void *user);

/* Copies batch k (k >= 0) into dst: [batch][3][size][size] floats, BGR, in [-1, 1].
 * Blocks until it is ready; *waited_s (may be NULL) gets the seconds spent waiting.
 * Requests are meant to come in increasing k from any start (k, k+1, k+2, ...), which the
 * workers prefetch; any other k is still answered correctly, after discarding what was
 * prefetched (so the first call of a resumed run costs one batch of latency). Call from
 * one thread at a time. Errors: CG_ERR_ARG; CG_ERR_FORMAT "DIR: none of the N images could
 * be decoded (FILE: reason)" when every file is bad; CG_ERR_NOMEM (also when a file
 * cannot be decoded for lack of memory: that is the machine's failure, not the file's, so
 * it is not skipped). A failed call may be retried. */
cg_status cg_loader_next(cg_loader *l, long k, float *dst, double *waited_s);

/* Files found bad so far, in the order found (i in [0, count)); the name is the path
 * DIR/NAME and the reason is cg_image_load's message without the path. The strings live
 * until close. Safe to call while workers run; the list only grows. */
int cg_loader_bad_count(const cg_loader *l);
const char *cg_loader_bad_name(const cg_loader *l, int i);
const char *cg_loader_bad_reason(const cg_loader *l, int i);
/* Distinct images found so far with a side smaller than `size` (upscaled). */
int cg_loader_small_count(const cg_loader *l);

/* Stops the workers (each finishes at most the image it is on), joins them and frees
 * everything; undelivered warnings are dropped. NULL is fine. */
void cg_loader_close(cg_loader *l);

#endif
