/* train.c: `cartoongan train --dataset DIR`: trains a CartoonGAN style with one command,
 * as the seed project's train.py: an init phase (G alone against the content loss), then
 * the GAN phase, on the training engine (cg_trainer) fed by background loaders
 * (src/train/data.h), logging to TensorBoard (src/io/events.h), stylizing the validation
 * photos at full size through the inference engine, and writing checkpoints atomically so
 * that --resume continues exactly where a run stopped (same step, same batches, same
 * losses). What is written where is in train_output.c. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cartoongan.h"
#include "cli/cli.h"
#include "cli/dist.h"
#include "cli/progress.h"
#include "cli/train.h"
#include "io/events.h"
#include "io/image.h"
#include "train/data.h"

#define CMD "train"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

static void print_help(void) {
    printf("usage: cartoongan train --dataset DIR [options]\n"
           "\n"
           "Train a CartoonGAN style on DIR/trainA (photos), DIR/trainB (cartoons),\n"
           "DIR/trainB_smooth (the cartoons after `cartoongan smooth`) and DIR/testA\n"
           "(validation photos, optional): an init phase (G against the content loss\n"
           "alone), then the GAN phase, as the seed project's train.py. Watch it with\n"
           "`tensorboard --logdir runs`; resume with --resume; export the style with\n"
           "`cartoongan export --checkpoint-dir DIR --name NAME`.\n"
           "\n"
           "options (defaults in brackets):\n"
           "  --dataset DIR          the dataset folder (required)\n"
           "  --vgg PATH|none        VGG19 weights for the content loss: torchvision's as\n"
           "                         .safetensors or Keras's vgg19 ..._notop.h5 (see README,\n"
           "                         Training); none: pixel L1 instead, weaker (required)\n"
           "  --input-size N         training crop side, a multiple of 4 [256]\n"
           "  --batch-size N         images per step [4]\n"
           "  --init-epochs N        epochs of the init phase [10; 0 with --init-from]\n"
           "  --epochs N             epochs of the GAN phase [100]\n"
           "  --lr-init X            G's learning rate in the init phase [2e-4]\n"
           "  --lr-g X               G's learning rate in the GAN phase [8e-5]\n"
           "  --lr-d X               D's learning rate [3e-5]\n"
           "  --content-weight W     content loss weight [10]\n"
           "  --style-weight W       style loss weight (Gram matrices) [0]\n"
           "  --gan-loss lsgan|bce   D's loss [lsgan]\n"
           "  --d-norm batch|instance  D's normalisation [batch]\n"
           "  --init-from STYLE|FILE start G from a released style (shinkai, hayao, hosoda,\n"
           "                         paprika: looked up like cartoonize's --styles) or a\n"
           "                         generator .safetensors [a fresh G]\n"
           "  --weights-dir DIR      where --init-from looks for styles [as 'weights' below\n"
           "                         says]\n"
           "  --log-dir DIR          TensorBoard event files, in init/ and gan/ [runs]\n"
           "  --checkpoint-dir DIR   checkpoints, the last 3 kept [training_checkpoints]\n"
           "  --result-dir DIR       validation grids and progress.gif [result]\n"
           "  --report-every N       steps between TensorBoard reports [100]\n"
           "  --save-every N         steps between checkpoints and validations, besides\n"
           "                         each epoch's end [500]\n"
           "  --max-steps N          stop (with a checkpoint) after N steps in all [no limit]\n"
           "  --resume               continue from the newest checkpoint in --checkpoint-dir\n"
           "  --seed N               initialisation, data order and crops [0]\n"
           "  --threads N            threads for the networks [one per CPU; under mpirun, the\n"
           "                         CPUs shared among the processes on each machine]\n"
           "  --loader-threads N     threads decoding images [2]\n"
           "  --mpi-timeout S        under mpirun: stop the whole job when the processes have\n"
           "                         not all met within S seconds (a process stuck or its\n"
           "                         machine unreachable; rank 0's validation and checkpoint\n"
           "                         count, so allow for them); 0 = wait forever [600]\n"
           "  --quiet                no progress bar or per-epoch lines\n"
           "  -h, --help             show this help and exit\n");
    cli_print_weights_help();
}

static int parse_float(const char *opt, const char *s, float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < 0)
        return cli_usage_error(CMD, "%s: '%s' is not a non-negative number", opt, s), -1;
    *out = (float)v;
    return 0;
}

static void defaults(train_opts *o) {
    memset(o, 0, sizeof *o);
    o->input_size = 256, o->batch = 4, o->init_epochs = -1, o->epochs = 100;
    o->lr_init = 2e-4f, o->lr_g = 8e-5f, o->lr_d = 3e-5f, o->content_weight = 10.f, o->style_weight = 0.f;
    o->gan_loss = "lsgan", o->d_norm = "batch";
    o->log_dir = "runs", o->ckpt_dir = "training_checkpoints", o->result_dir = "result";
    o->report_every = 100, o->save_every = 500, o->max_steps = -1;
    o->loader_threads = 2;
    o->mpi_timeout = 600;
    o->weights_dir = NULL; /* the default places (weights.c) */
}

/* -1: go on; otherwise the exit status. */
static int parse(train_opts *o, int argc, char **argv) {
    defaults(o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int r;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            print_help();
            return CLI_EXIT_OK;
        }
#define STR(name, field)                                                   \
    if ((r = cli_opt_value(CMD, argc, argv, &i, name, &v)) != 0) {         \
        if (r < 0) return CLI_EXIT_USAGE;                                  \
        o->field = v;                                                      \
        continue;                                                          \
    }
#define INT(name, field, lo, hi)                                           \
    if ((r = cli_opt_value(CMD, argc, argv, &i, name, &v)) != 0) {         \
        if (r < 0 || cli_parse_int(CMD, name, v, lo, hi, &o->field)) return CLI_EXIT_USAGE; \
        continue;                                                          \
    }
#define FLT(name, field)                                                   \
    if ((r = cli_opt_value(CMD, argc, argv, &i, name, &v)) != 0) {         \
        if (r < 0 || parse_float(name, v, &o->field)) return CLI_EXIT_USAGE; \
        continue;                                                          \
    }
#define FLAG(name, field)                                                  \
    if ((r = cli_opt_flag(CMD, argv, i, name)) != 0) {                     \
        if (r < 0) return CLI_EXIT_USAGE;                                  \
        o->field = 1;                                                      \
        continue;                                                          \
    }
        STR("--dataset", dataset) STR("--vgg", vgg) STR("--init-from", init_from) STR("--weights-dir", weights_dir)
        STR("--log-dir", log_dir) STR("--checkpoint-dir", ckpt_dir) STR("--result-dir", result_dir)
        STR("--gan-loss", gan_loss) STR("--d-norm", d_norm)
        INT("--input-size", input_size, 8, 4096) INT("--batch-size", batch, 1, 1024)
        INT("--init-epochs", init_epochs, 0, 1000000) INT("--epochs", epochs, 0, 1000000)
        INT("--report-every", report_every, 1, 1000000000) INT("--save-every", save_every, 1, 1000000000)
        INT("--max-steps", max_steps, 0, 2000000000) INT("--threads", threads, 0, 1024)
        INT("--loader-threads", loader_threads, 1, 64) INT("--mpi-timeout", mpi_timeout, 0, 1000000000)
        FLT("--lr-init", lr_init) FLT("--lr-g", lr_g) FLT("--lr-d", lr_d)
        FLT("--content-weight", content_weight) FLT("--style-weight", style_weight)
        FLAG("--resume", resume) FLAG("--quiet", quiet)
        if ((r = cli_opt_value(CMD, argc, argv, &i, "--seed", &v)) != 0) {
            char *end;
            errno = 0;
            if (r < 0) return CLI_EXIT_USAGE;
            o->seed = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-') return cli_usage_error(CMD, "--seed: '%s' is not a number", v);
            continue;
        }
        return cli_usage_error(CMD, a[0] == '-' ? "unknown option '%s'" : "unexpected argument '%s'", a);
#undef STR
#undef INT
#undef FLT
#undef FLAG
    }
    if (!o->dataset) return cli_usage_error(CMD, "--dataset DIR is required");
    if (o->input_size % 4) return cli_usage_error(CMD, "--input-size must be a multiple of 4 (G and D halve it twice)");
    if (strcmp(o->gan_loss, "lsgan") && strcmp(o->gan_loss, "bce"))
        return cli_usage_error(CMD, "--gan-loss must be lsgan or bce");
    if (strcmp(o->d_norm, "batch") && strcmp(o->d_norm, "instance"))
        return cli_usage_error(CMD, "--d-norm must be batch or instance");
    if (!o->vgg) {
        fprintf(stderr,
                "cartoongan train: --vgg is required: the content loss compares VGG19 features.\n"
                "  Get torchvision's ImageNet VGG19 as .safetensors (e.g. timm's vgg19.tv_in1k\n"
                "  release, model.safetensors) or Keras's vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5\n"
                "  (the file the seed project uses), and pass --vgg PATH. --vgg none trains with a\n"
                "  pixel L1 content loss instead (the seed project's --ignore_vgg): it runs, but its\n"
                "  cartoons keep less of the photos' content. See README, Training.\n");
        return CLI_EXIT_USAGE;
    }
    if (o->init_epochs < 0) o->init_epochs = o->init_from ? 0 : 10;
    return -1;
}

/* ---- the dataset ---- */

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static void loader_warn(void *user, const char *msg) {
    train_run *r = user;
    progress_message(&r->bar, "warning: %s", msg);
}

/* Opens the loader of DATASET/sub, naming the folder and what belongs in it on failure. */
static int open_loader(train_run *r, cg_loader **out, const char *sub, int stream, const char *what) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", r->o->dataset, sub);
    if (!is_dir(dir)) {
        fprintf(stderr, "cartoongan train: %s: no such folder; it should hold %s\n", dir, what);
        return -1;
    }
    if (cg_loader_open(out, dir, r->o->batch, r->o->input_size, r->o->seed, stream, r->o->loader_threads, 2) != CG_OK) {
        fprintf(stderr, "cartoongan train: %s; it should hold %s\n", cg_last_error(), what);
        return -1;
    }
    cg_loader_set_warn(*out, loader_warn, r);
    return 0;
}

/* trainB_smooth is made by `cartoongan smooth`: offered on a terminal, explained otherwise. */
static int ensure_smooth(const train_opts *o, int mpi) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/trainB_smooth", o->dataset);
    if (is_dir(dir)) return 0;
    fprintf(stderr, "cartoongan train: %s is missing: it holds the cartoons of %s/trainB with their edges\n"
                    "  smoothed, the paper's edge-promoting step. Make it with: cartoongan smooth --path %s\n",
            dir, o->dataset, o->dataset);
    if (o->quiet || mpi || !isatty(STDIN_FILENO) || !isatty(STDERR_FILENO)) return -1;
    fprintf(stderr, "Make it now? [Y/n] ");
    char line[16] = "";
    if (!fgets(line, sizeof line, stdin) || (line[0] != '\n' && line[0] != 'y' && line[0] != 'Y')) return -1;
    char *argv[] = {"smooth", "--path", (char *)o->dataset, NULL};
    return cmd_smooth(3, argv) == 0 ? 0 : -1;
}

/* ---- the loop ---- */

static const char *const loss_tags[TRAIN_LOSSES] = {"content_loss", "style_loss", "g_adversarial_loss", "g_total_loss",
                                                    "d_real_loss", "d_smooth_loss", "d_fake_loss", "d_total_loss"};

static void losses_array(const cg_train_losses *l, double v[TRAIN_LOSSES]) {
    v[0] = l->content, v[1] = l->style, v[2] = l->g_adversarial, v[3] = l->g_total;
    v[4] = l->d_real, v[5] = l->d_smooth, v[6] = l->d_fake, v[7] = l->d_total;
}

/* The bar's text: the last reported running means. */
static void bar_losses(train_run *r) {
    char s[160];
    if (r->phase == CG_PHASE_INIT) snprintf(s, sizeof s, "content %.4g", r->last[0]);
    else snprintf(s, sizeof s, "g %.4g  d %.4g  content %.4g", r->last[3], r->last[7], r->last[0]);
    progress_set_text(&r->bar, NULL, s);
}

static int report(train_run *r, int64_t step) {
    cg_events *ev = r->events[r->phase];
    double now = progress_now();
    for (int i = 0; i < TRAIN_LOSSES; i++) {
        if (!r->count[i]) continue;
        r->last[i] = r->sum[i] / r->count[i];
        if (ev && cg_events_scalar(ev, loss_tags[i], step, (float)r->last[i]) != CG_OK) return -1;
        r->sum[i] = 0, r->count[i] = 0;
    }
    double ips = r->report_images / fmax(now - r->report_start, 1e-9);
    r->last_ips = ips;
    if (ev && (cg_events_scalar(ev, "images_per_second", step, (float)ips) != CG_OK ||
               cg_events_scalar(ev, "learning_rate/g", step, r->phase == CG_PHASE_INIT ? r->o->lr_init : r->o->lr_g) != CG_OK ||
               (r->phase == CG_PHASE_GAN && cg_events_scalar(ev, "learning_rate/d", step, r->o->lr_d) != CG_OK) ||
               train_log_batch(r, step, "generated_images", cg_trainer_generated(r->t)) != 0 ||
               cg_events_flush(ev) != CG_OK))
        return -1;
    r->report_start = now, r->report_images = 0;
    bar_losses(r);
    return 0;
}

/* ---- the processes of an MPI job (src/cli/dist.h) ----
 * Every process runs this same loop on its slice of each global batch; the trainer sums
 * gradients, losses and D's batch norm statistics across them, so all hold the same
 * state and take the same decisions. Rank 0 alone writes (logs, grids, checkpoints) and
 * tells the others how that went, so that a failure stops every process at once. */

/* Rank 0's `rc` on every process. */
static int rank0_says(int rc) {
    if (dist_size() > 1) dist_bcast(&rc, sizeof rc);
    return rc;
}

/* Whether every process's `ok` is true; rank 0 names those whose is not (each printed
 * why). */
static int all_ok(int ok, const char *what) {
    const int k = dist_size();
    if (k == 1) return ok;
    double *f = calloc((size_t)k, sizeof *f);
    if (!f) return 0;
    f[dist_rank()] = !ok;
    dist_sum_doubles(f, (size_t)k);
    int all = 1;
    for (int i = 0; i < k; i++) {
        if (!f[i]) continue;
        all = 0;
        if (dist_rank() == 0 && i != 0) fprintf(stderr, "cartoongan train: rank %d could not %s (its message is above)\n", i, what);
    }
    free(f);
    return all;
}

static int cg_train_sum_floats(void *user, float *buf, size_t n) {
    (void)user;
    return dist_sum_floats(buf, n);
}

static int cg_train_sum_doubles(void *user, double *buf, size_t n) {
    (void)user;
    return dist_sum_doubles(buf, n);
}

static int cg_train_bcast(void *user, void *buf, size_t n) {
    (void)user;
    return dist_bcast(buf, n);
}

/* What rank 0 knows after a resume that the others need: the run's position. */
typedef struct {
    int64_t step, pos, epoch_images, phase_step0;
    int phase, epoch, phase_switch_pending, pad;
} run_position;

static void share_position(train_run *r) {
    run_position p = {r->step, r->pos, r->epoch_images, r->phase_step0, (int)r->phase, r->epoch, r->phase_switch_pending, 0};
    dist_bcast(&p, sizeof p);
    r->step = p.step, r->pos = p.pos, r->epoch_images = p.epoch_images, r->phase_step0 = p.phase_step0;
    r->phase = (cg_train_phase)p.phase, r->epoch = p.epoch, r->phase_switch_pending = p.phase_switch_pending;
}

/* Each process's loaders take its slice of every global batch from the run's position. */
static int set_slices(train_run *r) {
    cg_loader *ls[3] = {r->photos, r->cartoons, r->smooths};
    for (int i = 0; i < 3; i++)
        if (ls[i] && cg_loader_set_slice(ls[i], r->pos + (int64_t)r->rank * r->o->batch, r->global_batch) != CG_OK) {
            fprintf(stderr, "cartoongan train: %s\n", cg_last_error());
            return -1;
        }
    r->slice_step = r->step;
    return 0;
}

/* ---- the loop ---- */

/* Steps the phase still has from the run's position (r->epoch, r->epoch_images). */
static int64_t steps_left(const train_run *r, int epochs) {
    if (r->epoch >= epochs) return 0;
    int64_t rest = (r->nphotos - r->epoch_images + r->global_batch - 1) / r->global_batch;
    return (rest > 0 ? rest : 0) + (int64_t)(epochs - r->epoch - 1) * r->steps_per_epoch;
}

/* One phase: from the run's position to the end of its last epoch. */
static int run_phase(train_run *r, cg_train_phase phase, int epochs) {
    const train_opts *o = r->o;
    const int lead = r->rank == 0, mpi = r->processes > 1;
    r->phase = phase;
    if (r->epoch >= epochs) return 0; /* resumed past it */
    char label[48];
    const int64_t done0 = r->step - r->phase_step0;
    progress_init(&r->bar, (int)(done0 + steps_left(r, epochs)), "steps", "steps/s", lead && !o->quiet);
    progress_update(&r->bar, (double)done0);
    if (rank0_says(lead ? train_log_once(r) : 0) != 0) return 1;
    r->report_start = progress_now(), r->report_images = 0;
    if (!r->resumed) {
        memset(r->sum, 0, sizeof r->sum), memset(r->count, 0, sizeof r->count);
        memset(r->epoch_sum, 0, sizeof r->epoch_sum), memset(r->epoch_count, 0, sizeof r->epoch_count);
    }
    r->resumed = 0;
    double epoch_start = progress_now(), epoch_wait = 0;
    int64_t epoch_img0 = r->epoch_images;
    while (r->epoch < epochs) {
        snprintf(label, sizeof label, "%s %d/%d", phase == CG_PHASE_INIT ? "init" : "gan", r->epoch + 1, epochs);
        progress_set_text(&r->bar, label, NULL);
        const long k = train_data_index(r);
        double waited = 0, w;
        int data_ok = cg_loader_next(r->photos, k, r->batch_photo, &w) == CG_OK;
        waited += w;
        if (data_ok && phase == CG_PHASE_GAN) {
            data_ok = cg_loader_next(r->cartoons, k, r->batch_cartoon, &w) == CG_OK;
            waited += w;
            if (data_ok) data_ok = cg_loader_next(r->smooths, k, r->batch_smooth, &w) == CG_OK;
            waited += w;
        }
        if (!data_ok) {
            progress_finish(&r->bar);
            fprintf(stderr, "cartoongan train: %s%s\n", cg_last_error(), mpi ? " (stopping every process)" : "");
        }
        /* every process stops at the same step: when any was interrupted or lacks data */
        double flags[2] = {interrupted != 0, !data_ok};
        if (mpi) {
            dist_set_what("the check before a step");
            dist_sum_doubles(flags, 2);
        }
        if (flags[1]) return 1;
        if (flags[0] || (o->max_steps >= 0 && r->step >= o->max_steps)) {
            progress_finish(&r->bar);
            if (rank0_says(lead ? train_checkpoint(r) : 0) != 0) return 1;
            if (lead)
                fprintf(stderr, "cartoongan train: %s at step %lld; saved a checkpoint: continue with --resume\n",
                        flags[0] ? "interrupted" : "stopped (--max-steps)", (long long)r->step);
            return flags[0] ? 130 : 1000; /* 1000: a clean stop */
        }
        r->wait_s += waited, epoch_wait += waited;
        cg_train_losses l;
        char what[64];
        snprintf(what, sizeof what, "step %lld", (long long)r->step + 1);
        dist_set_what(what);
        if (cg_trainer_step(r->t, phase, r->batch_photo, phase == CG_PHASE_GAN ? r->batch_cartoon : NULL,
                            phase == CG_PHASE_GAN ? r->batch_smooth : NULL, &l) != CG_OK) {
            /* the losses are summed across the processes first, so all fail together */
            progress_finish(&r->bar);
            if (lead) {
                fprintf(stderr, "cartoongan train: %s\n", cg_last_error());
                if (r->last_ckpt[0])
                    fprintf(stderr, "cartoongan train: the last good checkpoint is %s (nothing was written after it)\n", r->last_ckpt);
            }
            return 1;
        }
        double v[TRAIN_LOSSES];
        losses_array(&l, v);
        for (int i = 0; i < TRAIN_LOSSES; i++)
            if (!isnan(v[i])) r->sum[i] += v[i], r->count[i]++, r->epoch_sum[i] += v[i], r->epoch_count[i]++;
        r->step++;
        r->pos += r->global_batch;
        r->epoch_images += r->global_batch;
        r->report_images += r->global_batch;
        progress_update(&r->bar, (double)(r->step - r->phase_step0));
        if ((r->step - r->phase_step0) % o->report_every == 0) {
            dist_set_what("rank 0's report");
            if (rank0_says(report(r, r->step)) != 0) {
                progress_finish(&r->bar);
                if (lead) fprintf(stderr, "cartoongan train: %s\n", cg_last_error());
                return 1;
            }
            if (lead && mpi && !o->quiet) /* no bar under mpirun (stderr is a pipe): a line per report */
                fprintf(stderr, "cartoongan train: %s, step %lld, %.1f images/s (%d processes), %s\n", label,
                        (long long)r->step, r->last_ips, r->processes, r->bar.extra);
        }
        const int epoch_end = r->epoch_images >= r->nphotos;
        if (epoch_end) {
            double secs = progress_now() - epoch_start;
            char line[300];
            int n = snprintf(line, sizeof line, "%s epoch %d/%d: step %lld, %.1f images/s", phase == CG_PHASE_INIT ? "init" : "gan",
                             r->epoch + 1, epochs, (long long)r->step, (double)(r->epoch_images - epoch_img0) / fmax(secs, 1e-9));
            for (int i = 0; i < TRAIN_LOSSES; i++)
                if (r->epoch_count[i] && n < (int)sizeof line)
                    n += snprintf(line + n, sizeof line - n, ", %s %.6g", loss_tags[i], r->epoch_sum[i] / r->epoch_count[i]);
            if (n < (int)sizeof line) snprintf(line + n, sizeof line - n, ", waited %.2f s for data", epoch_wait);
            if (lead && !o->quiet) progress_message(&r->bar, "%s", line);
            memset(r->epoch_sum, 0, sizeof r->epoch_sum), memset(r->epoch_count, 0, sizeof r->epoch_count);
        }
        /* after the epoch's bookkeeping, so that a checkpoint holds the state the next step starts from */
        if (epoch_end || r->step % o->save_every == 0) {
            dist_set_what("rank 0's validation and checkpoint");
            if (rank0_says(lead ? (train_validate(r) != 0 || train_checkpoint(r) != 0) : 0) != 0) return 1;
            /* rank 0's state is the one saved: every process continues from it exactly (the
             * sums give all the same bits, so this changes nothing unless an MPI's did not) */
            if (mpi && cg_trainer_sync(r->t) != CG_OK) return 1;
        }
        if (epoch_end) {
            r->epoch++, r->epoch_images = 0;
            epoch_start = progress_now(), epoch_wait = 0, epoch_img0 = 0;
        }
    }
    progress_finish(&r->bar);
    return 0;
}

int cmd_train(int argc, char **argv) {
    if (dist_start("train") != 0) return CLI_EXIT_FAIL;
    train_opts o;
    dist_mute_begin(); /* every process parses; rank 0 alone says what it thinks */
    int rc = parse(&o, argc, argv);
    dist_mute_end();
    if (rc >= 0) {
        dist_finish();
        return rc;
    }
    dist_set_timeout(o.mpi_timeout);
    dist_set_what("the start");
    train_run r;
    memset(&r, 0, sizeof r);
    r.o = &o;
    r.rank = dist_rank(), r.processes = dist_size();
    const int lead = r.rank == 0, mpi = r.processes > 1;
    if (mpi && o.threads == 0) o.threads = dist_default_threads();
    rc = CLI_EXIT_FAIL;
    const int gan = o.epochs > 0;
    int ok = 1;
    if (!is_dir(o.dataset)) {
        fprintf(stderr, "cartoongan train: %s: no such folder; a dataset holds trainA/ (photos), trainB/ (cartoons), "
                        "trainB_smooth/ (made by `cartoongan smooth`) and testA/ (validation photos)\n", o.dataset);
        ok = 0;
    }
    /* every process reads the dataset (the same path on every machine, or a shared one) */
    if (ok && (open_loader(&r, &r.photos, "trainA", 0, "the training photos (.jpg .jpeg .png .webp)") != 0 ||
               (gan && open_loader(&r, &r.cartoons, "trainB", 1, "the cartoons of the style to learn (.jpg .jpeg .png .webp)") != 0) ||
               (gan && ensure_smooth(&o, mpi) != 0) ||
               (gan && open_loader(&r, &r.smooths, "trainB_smooth", 2, "trainB's cartoons after `cartoongan smooth`") != 0)))
        ok = 0;
    if (!all_ok(ok, "open the dataset")) goto done;
    r.nphotos = cg_loader_count(r.photos);
    r.global_batch = o.batch * r.processes;
    r.steps_per_epoch = (r.nphotos + r.global_batch - 1) / r.global_batch;
    cg_train_config c;
    cg_train_config_default(&c);
    c.batch = o.batch, c.height = c.width = o.input_size;
    c.lr_g = o.init_epochs > 0 ? o.lr_init : o.lr_g, c.lr_d = o.lr_d;
    c.content_weight = o.content_weight, c.style_weight = o.style_weight;
    c.gan_loss = strcmp(o.gan_loss, "bce") ? CG_GAN_LSGAN : CG_GAN_BCE;
    c.d_norm = strcmp(o.d_norm, "instance") ? CG_DNORM_BATCH : CG_DNORM_INSTANCE;
    c.seed = o.seed, c.threads = o.threads;
    if (cg_trainer_create(&r.t, &c, strcmp(o.vgg, "none") ? o.vgg : NULL) != CG_OK) {
        fprintf(stderr, "cartoongan train: %s\n", cg_last_error());
        ok = 0;
    }
    if (!all_ok(ok, "set up the trainer (--vgg)")) goto done;
    /* the run starts at step 0 in the init phase, or in the GAN phase when there is none */
    r.phase = o.init_epochs > 0 ? CG_PHASE_INIT : CG_PHASE_GAN;
    r.phase_switch_pending = o.init_epochs > 0;
    /* rank 0 alone reads and writes the run's files (checkpoints live on its machine) */
    if (lead) {
        if (train_setup_outputs(&r) != 0) ok = 0;
        else if (o.resume) ok = train_resume(&r) == 0;
        else if (o.init_from) ok = train_init_from(&r) == 0;
    }
    if (rank0_says(!ok) != 0) goto done;
    if (mpi) {
        cg_train_comm comm = {r.processes, cg_train_sum_floats, cg_train_sum_doubles, cg_train_bcast, NULL};
        if (cg_trainer_set_comm(r.t, &comm) != CG_OK || cg_trainer_sync(r.t) != CG_OK) {
            fprintf(stderr, "cartoongan train: %s\n", cg_last_error());
            goto done;
        }
        share_position(&r);
        if (lead && o.resume && !o.quiet)
            fprintf(stderr, "cartoongan train: %d processes, each of batch %d: a global batch of %d\n", r.processes, o.batch,
                    r.global_batch);
    }
    if (set_slices(&r) != 0) ok = 0;
    size_t img = (size_t)o.batch * 3 * o.input_size * o.input_size;
    r.batch_photo = malloc(img * sizeof(float)), r.batch_cartoon = malloc(img * sizeof(float));
    r.batch_smooth = malloc(img * sizeof(float));
    if (ok && (!r.batch_photo || !r.batch_cartoon || !r.batch_smooth)) {
        fprintf(stderr, "cartoongan train: out of memory\n");
        ok = 0;
    }
    if (!all_ok(ok, "start")) goto done;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    double t0 = progress_now(), sum0 = dist_sum_seconds();
    int64_t step0 = r.step;
    rc = 0;
    if (r.phase == CG_PHASE_INIT) rc = run_phase(&r, CG_PHASE_INIT, o.init_epochs);
    if (rc == 0 && gan) {
        if (r.phase_switch_pending) {
            /* the GAN phase's optimizer for G is a new one, as the seed project's */
            cg_trainer_restart_optimizer(r.t, CG_NET_G);
            r.phase_switch_pending = 0;
            r.epoch = 0, r.epoch_images = 0, r.phase_step0 = r.step;
        }
        cg_trainer_set_learning_rate(r.t, CG_NET_G, o.lr_g);
        rc = run_phase(&r, CG_PHASE_GAN, o.epochs);
    }
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (rc == 1000) rc = 0;
    if (rc == 0 && lead && !o.quiet) {
        double secs = progress_now() - t0, steps = (double)(r.step - step0);
        printf("trained %lld step%s in %.0f s (%.2f images/s, %.1f s waiting for data", (long long)(r.step - step0),
               r.step - step0 == 1 ? "" : "s", secs, steps * r.global_batch / fmax(secs, 1e-9), r.wait_s);
        if (mpi) /* rank 0's time in the sums across processes, its wait for slower ones included */
            printf("; %d processes, all-reduce %.2f s, %.1f %% of the time", r.processes, dist_sum_seconds() - sum0,
                   100 * (dist_sum_seconds() - sum0) / fmax(secs, 1e-9));
        printf("); last checkpoint %s\n", r.last_ckpt[0] ? r.last_ckpt : "(none)");
    }
    if (lead) train_report_files(&r);
done:
    if (lead) train_close_outputs(&r);
    cg_trainer_free(r.t);
    cg_loader_close(r.photos), cg_loader_close(r.cartoons), cg_loader_close(r.smooths);
    free(r.batch_photo), free(r.batch_cartoon), free(r.batch_smooth);
    /* every process ends with the same status: each stopped at the same point */
    fflush(stdout), fflush(stderr);
    dist_finish();
    return rc;
}
