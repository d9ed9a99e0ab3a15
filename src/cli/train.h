/* train.h: what the two halves of `cartoongan train` share: the options, and the run's
 * state (train.c runs the loop; train_output.c writes what a run leaves behind:
 * TensorBoard events, validation grids and progress.gif, checkpoints). */
#ifndef CG_CLI_TRAIN_H
#define CG_CLI_TRAIN_H

#include <stdint.h>

#include "cartoongan.h"
#include "cli/progress.h"
#include "io/events.h"
#include "train/data.h"

typedef struct {
    const char *dataset, *vgg, *init_from, *weights_dir, *log_dir, *ckpt_dir, *result_dir, *gan_loss, *d_norm;
    int input_size, batch, init_epochs, epochs, report_every, save_every, max_steps, threads, loader_threads;
    int resume, quiet;
    int mpi_timeout; /* seconds a process waits for the others before stopping the job */
    float lr_init, lr_g, lr_d, content_weight, style_weight;
    uint64_t seed;
} train_opts;

#define TRAIN_LOSSES 8
#define TRAIN_KEEP_CHECKPOINTS 3
#define TRAIN_MAX_VAL 64 /* validation photos shown in the grids (all are stylized) */

typedef struct {
    const train_opts *o;
    cg_trainer *t;
    cg_loader *photos, *cartoons, *smooths;
    float *batch_photo, *batch_cartoon, *batch_smooth;
    /* The run's position. A step takes a global batch of `global_batch` images (the
     * processes' batches together: `--batch-size` x the processes of an MPI job) from each
     * data stream; an epoch ends once it has taken as many photos as trainA holds
     * (`nphotos`), i.e. after steps_per_epoch steps. What a checkpoint records is global,
     * so a run resumes at the same step and data position with any number of processes. */
    int nphotos, global_batch, steps_per_epoch;
    int64_t step;          /* steps done in all, both phases */
    int64_t pos;           /* the data streams' position: images taken from each so far */
    cg_train_phase phase;
    int epoch;             /* in the phase, from 0: the epoch of the step under way or just taken */
    int64_t epoch_images;  /* images taken in that epoch so far */
    int64_t phase_step0;   /* the step the phase began at (reports count from it) */
    int phase_switch_pending; /* G's optimizer restarts when the GAN phase begins */
    int64_t slice_step;    /* the loaders were given their slice at this step: batch index
                              step - slice_step (train_data_index) */
    int rank, processes;   /* this process in the MPI job (0 of 1 alone) */
    progress bar;
    double sum[TRAIN_LOSSES], last[TRAIN_LOSSES], epoch_sum[TRAIN_LOSSES];
    int count[TRAIN_LOSSES], epoch_count[TRAIN_LOSSES];
    double report_start, wait_s, last_ips;
    int report_images;
    cg_events *events[2];  /* init/ and gan/, opened when the phase starts */
    int logged_once[2];
    int resumed;           /* the running sums came from a checkpoint: keep them at the phase's start */
    char **val_paths;      /* testA's images */
    int nval;
    char last_ckpt[4096];
} train_run;

/* The loaders' batch index of the step under way. */
static inline long train_data_index(const train_run *r) { return (long)(r->step - r->slice_step); }

/* train_output.c; each returns 0, or -1 after printing one line naming the file. Only
 * rank 0 of an MPI job calls the ones that write (setup, resume, init_from, the logs,
 * validation, checkpoints). */
int train_setup_outputs(train_run *r);
int train_resume(train_run *r);
int train_init_from(train_run *r);
int train_log_once(train_run *r);
int train_log_batch(train_run *r, int64_t step, const char *what, const float *images);
int train_validate(train_run *r);
int train_checkpoint(train_run *r);
void train_report_files(train_run *r);
void train_close_outputs(train_run *r);

#endif
