/* dist.c: the job of several processes as dist.h describes it: whether this process was
 * started by a launcher, the MPI calls of src/dist/mpi.c (when make linked it) wrapped
 * with a timeout, the time spent in sums, and the one-line messages that name the rank and
 * host before the job is stopped.
 *
 * Timeouts. A blocking MPI collective cannot be given a deadline, and its non-blocking
 * form progresses only inside MPI calls (polling it would slow every step), so the
 * collectives stay blocking and a watchdog thread watches them: when one has not returned
 * by its deadline, the watchdog prints the message and ends the process (_exit, no MPI
 * call from that thread), and mpirun, seeing a process end without MPI_Finalize, stops
 * the others. Waits for messages poll instead (dist_recv), sleeping between probes. */
#include "cli/dist.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

/* src/dist/mpi.c defines it when make found mpicc; otherwise this weak reference is NULL
 * and the command runs alone. */
#if defined(__GNUC__)
extern const dist_backend cg_dist_mpi __attribute__((weak));
#define MPI_BACKEND (&cg_dist_mpi)
#else
#define MPI_BACKEND ((const dist_backend *)NULL)
#endif

static const dist_backend *be; /* set once this process has joined a job */
static int rank_, size_ = 1;
static char cmd_[32] = "cartoongan", host_[256];
static double sum_seconds_;

static pthread_mutex_t wd_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cv = PTHREAD_COND_INITIALIZER;
static double timeout_ = 600;
static char what_[160] = "a collective call";
static int wd_started, wd_active;
static double wd_deadline, wd_began;
static char wd_call[32];

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

const char *dist_mpi_library(void) {
    static char lib[256];
    if (!MPI_BACKEND) return NULL;
    if (!lib[0]) MPI_BACKEND->library(lib, sizeof lib);
    return lib;
}

int dist_default_threads(void) {
    const char *v = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    int local = v ? atoi(v) : 1;
    if (size_ <= 1 || local <= 1) return 0;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus / local > 1 ? (int)(cpus / local) : 1;
}

int dist_rank(void) { return rank_; }
int dist_size(void) { return size_; }
const char *dist_host(void) {
    if (!host_[0] && gethostname(host_, sizeof host_ - 1) != 0) snprintf(host_, sizeof host_, "unknown host");
    return host_;
}
double dist_sum_seconds(void) { return sum_seconds_; }

/* The job's size as the launcher tells it in the environment (Open MPI's mpirun, MPICH's
 * and Slurm's PMI), or 0 when no launcher started this process. */
static int launched_size(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 0) return atoi(v);
    }
    if (!getenv("PMIX_RANK") && !getenv("PMI_RANK")) return 0;
    const char *n = getenv("SLURM_NTASKS"); /* srun --mpi=pmix says the size only there */
    return n && atoi(n) > 0 ? atoi(n) : 1;
}

int dist_start(const char *cmd) {
    snprintf(cmd_, sizeof cmd_, "cartoongan %s", cmd);
    int n = launched_size();
    if (n == 0) return 0; /* an ordinary single process */
    if (!MPI_BACKEND) {
        if (n == 1) return 0;
        fprintf(stderr, "%s: started by mpirun (or srun) as one of %d processes, but this cartoongan was built "
                        "without MPI, so each would do the whole job; install Open MPI (tools/install_deps.sh) "
                        "and rebuild (make)\n", cmd_, n);
        return -1;
    }
    char err[256] = "";
    if (MPI_BACKEND->init(&rank_, &size_, err, sizeof err) != 0) {
        fprintf(stderr, "%s: cannot start MPI: %s\n", cmd_, err);
        rank_ = 0, size_ = 1;
        return -1;
    }
    be = MPI_BACKEND;
    return 0;
}

void dist_finish(void) {
    if (be) be->finish();
    be = NULL;
}

void dist_abort(int status) {
    fflush(stdout);
    fflush(stderr);
    if (be && size_ > 1) be->abort(status);
    exit(status);
}

static int saved_out = -1, saved_err = -1;

void dist_mute_begin(void) {
    if (rank_ == 0) return;
    fflush(stdout), fflush(stderr);
    int null = open("/dev/null", O_WRONLY);
    if (null < 0) return;
    saved_out = dup(STDOUT_FILENO), saved_err = dup(STDERR_FILENO);
    dup2(null, STDOUT_FILENO), dup2(null, STDERR_FILENO);
    close(null);
}

void dist_mute_end(void) {
    if (saved_out < 0) return;
    fflush(stdout), fflush(stderr);
    dup2(saved_out, STDOUT_FILENO), dup2(saved_err, STDERR_FILENO);
    close(saved_out), close(saved_err);
    saved_out = saved_err = -1;
}

void dist_set_timeout(double seconds) { timeout_ = seconds > 0 ? seconds : 0; }

void dist_set_what(const char *what) {
    pthread_mutex_lock(&wd_mu);
    snprintf(what_, sizeof what_, "%s", what);
    pthread_mutex_unlock(&wd_mu);
}

/* Prints why the job stops and ends it. */
static void fatal(const char *call, const char *err) {
    fprintf(stderr, "%s: rank %d of %d (%s): MPI error in %s during %s: %s; stopping the job\n", cmd_, rank_, size_,
            dist_host(), call, what_, err);
    dist_abort(CLI_EXIT_FAIL);
}

/* ---- the watchdog ---- */

static void *watchdog(void *arg) {
    (void)arg;
    pthread_mutex_lock(&wd_mu);
    for (;;) {
        if (!wd_active) {
            pthread_cond_wait(&wd_cv, &wd_mu);
            continue;
        }
        double left = wd_deadline - now_s();
        if (left <= 0) {
            fprintf(stderr, "%s: rank %d of %d (%s): no answer from the other processes for %.0f s in %s (%s): a process "
                            "is stuck or its machine unreachable (--mpi-timeout sets the limit); stopping the job\n",
                    cmd_, rank_, size_, dist_host(), now_s() - wd_began, what_, wd_call);
            fflush(stderr);
            _exit(CLI_EXIT_FAIL); /* mpirun sees a process end without MPI_Finalize and stops the rest */
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double until = (double)ts.tv_sec + ts.tv_nsec * 1e-9 + left;
        ts.tv_sec = (time_t)until;
        ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
        pthread_cond_timedwait(&wd_cv, &wd_mu, &ts);
    }
    return NULL;
}

static void wd_begin(const char *call) {
    if (timeout_ <= 0) return;
    pthread_mutex_lock(&wd_mu);
    if (!wd_started) {
        /* the watchdog takes no signal: Ctrl-C and mpirun's SIGTERM go to the main thread */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_t th;
        if (pthread_create(&th, NULL, watchdog, NULL) == 0) {
            pthread_detach(th);
            wd_started = 1;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    wd_active = 1;
    wd_began = now_s();
    wd_deadline = wd_began + timeout_;
    snprintf(wd_call, sizeof wd_call, "%s", call);
    pthread_cond_signal(&wd_cv);
    pthread_mutex_unlock(&wd_mu);
}

static void wd_end(void) {
    if (timeout_ <= 0) return;
    pthread_mutex_lock(&wd_mu);
    wd_active = 0;
    pthread_mutex_unlock(&wd_mu);
}

/* ---- collectives ---- */

static int sum(void *buf, size_t n, int is_double) {
    if (!be || size_ == 1 || n == 0) return 0;
    char err[256] = "";
    double t0 = now_s();
    wd_begin("MPI_Allreduce");
    int rc = be->sum(buf, n, is_double, err, sizeof err);
    wd_end();
    sum_seconds_ += now_s() - t0;
    if (rc != 0) fatal("MPI_Allreduce", err);
    return 0;
}

int dist_sum_floats(float *buf, size_t n) { return sum(buf, n, 0); }
int dist_sum_doubles(double *buf, size_t n) { return sum(buf, n, 1); }

int dist_bcast(void *buf, size_t bytes) {
    if (!be || size_ == 1 || bytes == 0) return 0;
    char err[256] = "";
    wd_begin("MPI_Bcast");
    int rc = be->bcast(buf, bytes, err, sizeof err);
    wd_end();
    if (rc != 0) fatal("MPI_Bcast", err);
    return 0;
}

int dist_barrier(void) {
    if (!be || size_ == 1) return 0;
    char err[256] = "";
    wd_begin("MPI_Barrier");
    int rc = be->barrier(err, sizeof err);
    wd_end();
    if (rc != 0) fatal("MPI_Barrier", err);
    return 0;
}

/* ---- messages ---- */

int dist_send(int to, int tag, const void *buf, size_t n) {
    if (!be) return -1;
    char err[256] = "";
    if (n > DIST_MAX_MESSAGE || be->send(to, tag, buf, n, err, sizeof err) != 0) fatal("MPI_Send", err);
    return 0;
}

int dist_poll(int tag, int *from, size_t *n) {
    if (!be) return 0;
    char err[256] = "";
    int r = be->probe(-1, tag, from, n, err, sizeof err);
    if (r < 0) fatal("MPI_Iprobe", err);
    return r;
}

int dist_recv(int from, int tag, void *buf, size_t cap, size_t *n) {
    if (!be) return -1;
    char err[256] = "";
    const double t0 = now_s();
    long sleep_ns = 20000; /* 20 us, doubling to 5 ms: quick answers stay quick */
    for (;;) {
        int src;
        size_t len;
        int r = be->probe(from, tag, &src, &len, err, sizeof err);
        if (r < 0) fatal("MPI_Iprobe", err);
        if (r > 0) break;
        if (timeout_ > 0 && now_s() - t0 > timeout_) {
            fprintf(stderr, "%s: rank %d of %d (%s): no message from rank %d for %.0f s during %s: it is stuck or its "
                            "machine unreachable; stopping the job\n", cmd_, rank_, size_, dist_host(), from,
                    now_s() - t0, what_);
            dist_abort(CLI_EXIT_FAIL);
        }
        struct timespec ts = {0, sleep_ns};
        nanosleep(&ts, NULL);
        if (sleep_ns < 5000000) sleep_ns *= 2;
    }
    if (be->recv(from, tag, buf, cap, n, err, sizeof err) != 0) fatal("MPI_Recv", err);
    return 0;
}
