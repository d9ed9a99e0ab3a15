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
           "  --threads N            threads for the networks [one per CPU]\n"
           "  --loader-threads N     threads decoding images [2]\n"
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
        INT("--loader-threads", loader_threads, 1, 64)
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
static int ensure_smooth(const train_opts *o) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/trainB_smooth", o->dataset);
    if (is_dir(dir)) return 0;
    fprintf(stderr, "cartoongan train: %s is missing: it holds the cartoons of %s/trainB with their edges\n"
                    "  smoothed, the paper's edge-promoting step. Make it with: cartoongan smooth --path %s\n",
            dir, o->dataset, o->dataset);
    if (o->quiet || !isatty(STDIN_FILENO) || !isatty(STDERR_FILENO)) return -1;
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

/* Both phases: epochs of steps_per_epoch steps, from the run's current position. */
static int run_phase(train_run *r, cg_train_phase phase, int epochs, int64_t first_step) {
    const train_opts *o = r->o;
    r->phase = phase;
    if (epochs <= 0) return 0;
    const int64_t phase_steps = (int64_t)epochs * r->steps_per_epoch;
    if (r->step >= first_step + phase_steps) return 0; /* resumed past it */
    char label[48];
    progress_init(&r->bar, (int)(phase_steps), "steps", "steps/s", !o->quiet);
    if (train_log_once(r) != 0) return -1;
    r->report_start = progress_now(), r->report_images = 0;
    if (!r->resumed) {
        memset(r->sum, 0, sizeof r->sum), memset(r->count, 0, sizeof r->count);
        memset(r->epoch_sum, 0, sizeof r->epoch_sum), memset(r->epoch_count, 0, sizeof r->epoch_count);
    }
    r->resumed = 0;
    double epoch_start = progress_now(), epoch_wait = 0;
    while (r->step < first_step + phase_steps) {
        if (interrupted || (o->max_steps >= 0 && r->step >= o->max_steps)) {
            progress_finish(&r->bar);
            if (train_checkpoint(r) != 0) return -1;
            fprintf(stderr, "cartoongan train: %s at step %lld; saved a checkpoint: continue with --resume\n",
                    interrupted ? "interrupted" : "stopped (--max-steps)", (long long)r->step);
            return interrupted ? 130 : 1000; /* 1000: a clean stop */
        }
        const int64_t k = r->step, in_phase = k - first_step;
        r->epoch = (int)(in_phase / r->steps_per_epoch);
        snprintf(label, sizeof label, "%s %d/%d", phase == CG_PHASE_INIT ? "init" : "gan", r->epoch + 1, epochs);
        progress_set_text(&r->bar, label, NULL);
        double waited = 0, w;
        if (cg_loader_next(r->photos, k, r->batch_photo, &w) != CG_OK) goto data_error;
        waited += w;
        if (phase == CG_PHASE_GAN) {
            if (cg_loader_next(r->cartoons, k, r->batch_cartoon, &w) != CG_OK) goto data_error;
            waited += w;
            if (cg_loader_next(r->smooths, k, r->batch_smooth, &w) != CG_OK) goto data_error;
            waited += w;
        }
        r->wait_s += waited, epoch_wait += waited;
        cg_train_losses l;
        if (cg_trainer_step(r->t, phase, r->batch_photo, phase == CG_PHASE_GAN ? r->batch_cartoon : NULL,
                            phase == CG_PHASE_GAN ? r->batch_smooth : NULL, &l) != CG_OK) {
            progress_finish(&r->bar);
            fprintf(stderr, "cartoongan train: %s\n", cg_last_error());
            if (r->last_ckpt[0])
                fprintf(stderr, "cartoongan train: the last good checkpoint is %s (nothing was written after it)\n", r->last_ckpt);
            return 1;
        }
        double v[TRAIN_LOSSES];
        losses_array(&l, v);
        for (int i = 0; i < TRAIN_LOSSES; i++)
            if (!isnan(v[i])) r->sum[i] += v[i], r->count[i]++, r->epoch_sum[i] += v[i], r->epoch_count[i]++;
        r->step++;
        r->report_images += o->batch;
        progress_update(&r->bar, (double)(r->step - first_step));
        if ((r->step - first_step) % o->report_every == 0 && report(r, r->step) != 0) goto io_error;
        const int epoch_end = (r->step - first_step) % r->steps_per_epoch == 0;
        if (epoch_end) {
            double secs = progress_now() - epoch_start;
            char line[300];
            int n = snprintf(line, sizeof line, "%s epoch %d/%d: step %lld, %.1f images/s", phase == CG_PHASE_INIT ? "init" : "gan",
                             r->epoch + 1, epochs, (long long)r->step, r->steps_per_epoch * o->batch / fmax(secs, 1e-9));
            for (int i = 0; i < TRAIN_LOSSES; i++)
                if (r->epoch_count[i] && n < (int)sizeof line)
                    n += snprintf(line + n, sizeof line - n, ", %s %.6g", loss_tags[i], r->epoch_sum[i] / r->epoch_count[i]);
            if (n < (int)sizeof line) snprintf(line + n, sizeof line - n, ", waited %.2f s for data", epoch_wait);
            if (!o->quiet) progress_message(&r->bar, "%s", line);
            memset(r->epoch_sum, 0, sizeof r->epoch_sum), memset(r->epoch_count, 0, sizeof r->epoch_count);
        }
        /* after the epoch's bookkeeping, so that a checkpoint holds the state the next step starts from */
        if (epoch_end || r->step % o->save_every == 0) {
            if (train_validate(r) != 0 || train_checkpoint(r) != 0) return 1;
        }
        if (epoch_end) epoch_start = progress_now(), epoch_wait = 0;
    }
    progress_finish(&r->bar);
    return 0;
data_error:
io_error:
    progress_finish(&r->bar);
    fprintf(stderr, "cartoongan train: %s\n", cg_last_error());
    return 1;
}

int cmd_train(int argc, char **argv) {
    train_opts o;
    int rc = parse(&o, argc, argv);
    if (rc >= 0) return rc;
    train_run r;
    memset(&r, 0, sizeof r);
    r.o = &o;
    rc = CLI_EXIT_FAIL;
    const int gan = o.epochs > 0;
    if (!is_dir(o.dataset)) {
        fprintf(stderr, "cartoongan train: %s: no such folder; a dataset holds trainA/ (photos), trainB/ (cartoons), "
                        "trainB_smooth/ (made by `cartoongan smooth`) and testA/ (validation photos)\n", o.dataset);
        return CLI_EXIT_FAIL;
    }
    if (open_loader(&r, &r.photos, "trainA", 0, "the training photos (.jpg .jpeg .png .webp)") != 0 ||
        (gan && open_loader(&r, &r.cartoons, "trainB", 1, "the cartoons of the style to learn (.jpg .jpeg .png .webp)") != 0) ||
        (gan && ensure_smooth(&o) != 0) ||
        (gan && open_loader(&r, &r.smooths, "trainB_smooth", 2, "trainB's cartoons after `cartoongan smooth`") != 0))
        goto done;
    r.steps_per_epoch = (cg_loader_count(r.photos) + o.batch - 1) / o.batch;
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
        goto done;
    }
    if (train_setup_outputs(&r) != 0) goto done;
    r.phase_switch_pending = o.init_epochs > 0;
    if (o.resume) {
        if (train_resume(&r) != 0) goto done;
    } else if (o.init_from && train_init_from(&r) != 0) {
        goto done;
    }
    size_t img = (size_t)o.batch * 3 * o.input_size * o.input_size;
    r.batch_photo = malloc(img * sizeof(float)), r.batch_cartoon = malloc(img * sizeof(float));
    r.batch_smooth = malloc(img * sizeof(float));
    if (!r.batch_photo || !r.batch_cartoon || !r.batch_smooth) {
        fprintf(stderr, "cartoongan train: out of memory\n");
        goto done;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    const int64_t init_steps = (int64_t)o.init_epochs * r.steps_per_epoch;
    double t0 = progress_now();
    int64_t step0 = r.step;
    rc = run_phase(&r, CG_PHASE_INIT, o.init_epochs, 0);
    if (rc == 0 && gan) {
        if (r.phase_switch_pending && r.step == init_steps) {
            /* the GAN phase's optimizer for G is a new one, as the seed project's */
            cg_trainer_restart_optimizer(r.t, CG_NET_G);
            r.phase_switch_pending = 0;
        }
        cg_trainer_set_learning_rate(r.t, CG_NET_G, o.lr_g);
        rc = run_phase(&r, CG_PHASE_GAN, o.epochs, init_steps);
    }
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (rc == 1000) rc = 0;
    if (rc == 0 && !o.quiet) {
        double secs = progress_now() - t0;
        printf("trained %lld step%s in %.0f s (%.2f images/s, %.1f s waiting for data); last checkpoint %s\n",
               (long long)(r.step - step0), r.step - step0 == 1 ? "" : "s", secs, (r.step - step0) * o.batch / fmax(secs, 1e-9), r.wait_s,
               r.last_ckpt[0] ? r.last_ckpt : "(none)");
    }
    train_report_files(&r);
done:
    train_close_outputs(&r);
    cg_trainer_free(r.t);
    cg_loader_close(r.photos), cg_loader_close(r.cartoons), cg_loader_close(r.smooths);
    free(r.batch_photo), free(r.batch_cartoon), free(r.batch_smooth);
    return rc;
}
