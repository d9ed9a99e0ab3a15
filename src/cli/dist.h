/* dist.h: the command's view of a job of several processes, `mpirun -np K cartoongan
 * train|cartoonize ...` (or Slurm's `srun`): this process's rank and the job's size, sums
 * and broadcasts across the processes, and messages between two of them (cartoonize's
 * work queue). MPI itself is in src/dist/mpi.c, which make builds and links into the
 * cartoongan command only when it finds Open MPI's mpicc; the library never sees it.
 * Without it, or when the command was not started by a launcher, the job is this one
 * process (rank 0 of 1) and every call below is trivial, so nothing changes for a user
 * of one machine (MPI is not even initialised: that alone costs 0.3 s).
 *
 * Failures never leave a job hanging: an MPI error, or a collective call or a wait for a
 * message that has not completed after the timeout (dist_set_timeout), prints one line
 * naming the rank, its host and what it was waiting for, and ends this process with
 * status 1; mpirun then stops the others. A process that dies (killed, crashed) is
 * noticed by mpirun itself, which stops the job with its own message. */
#ifndef CG_CLI_DIST_H
#define CG_CLI_DIST_H

#include <stddef.h>

/* Joins the job if this process was started by a launcher (mpirun, srun) and the command
 * was built with MPI. `cmd` names the command in messages ("train"). Returns 0, or -1
 * after a one-line message: started by mpirun with several processes but built without
 * MPI (each process would otherwise do the whole job), or MPI failed to start. */
int dist_start(const char *cmd);
/* Leaves the job (MPI_Finalize); every process calls it, at the end, after its last
 * message. Harmless when dist_start did nothing. */
void dist_finish(void);
/* Ends the whole job now with `status` (MPI_Abort; plain exit when alone). */
void dist_abort(int status);

/* The MPI library this command was built with ("Open MPI v4.1.4"), or NULL without. */
const char *dist_mpi_library(void);

/* Around parsing the command line, which every process does alike: on ranks other than
 * 0, stdout and stderr go to /dev/null in between, so that help and usage errors are
 * printed once. */
void dist_mute_begin(void);
void dist_mute_end(void);

/* Threads for each process when the user gave no --threads: 0 (one per CPU) alone; the
 * CPUs shared among this machine's processes of the job otherwise. */
int dist_default_threads(void);

int dist_rank(void);        /* 0 when alone */
int dist_size(void);        /* 1 when alone */
const char *dist_host(void); /* this machine's name, for messages */

/* How long a collective call or a wait for a message may take before the job is stopped
 * (seconds; 0 = forever). Default 600. `what` (a short phrase such as "the all-reduce of
 * step 12") is named in the timeout message; it is copied. */
void dist_set_timeout(double seconds);
void dist_set_what(const char *what);

/* Element-wise sums across every process, in place; every process gets the same bits.
 * Each returns 0 (any failure ends the job, see above). */
int dist_sum_floats(float *buf, size_t n);
int dist_sum_doubles(double *buf, size_t n);
/* buf's bytes become process 0's. */
int dist_bcast(void *buf, size_t bytes);
/* Every process waits until all have arrived. */
int dist_barrier(void);
/* Seconds this process has spent inside the sums so far (for the all-reduce's share of a
 * training step). */
double dist_sum_seconds(void);

/* Messages of up to DIST_MAX_MESSAGE bytes between two processes, for a work queue. A
 * send does not wait for the receiver to take it. dist_poll says whether a message with
 * `tag` from anyone is waiting (without waiting; *from and *n get its sender and size);
 * dist_recv waits for one from `from` (the timeout applies; the wait sleeps, so a process
 * waiting for work leaves its CPU to the others). */
#define DIST_MAX_MESSAGE 65536
int dist_send(int to, int tag, const void *buf, size_t n);
int dist_poll(int tag, int *from, size_t *n);
int dist_recv(int from, int tag, void *buf, size_t cap, size_t *n);

/* What src/dist/mpi.c provides, as calls that return 0 or -1 (with the error's text in
 * `err`, err_n bytes); dist.c adds the timeouts, the messages and the stopping. */
typedef struct {
    int (*init)(int *rank, int *size, char *err, size_t err_n);
    int (*sum)(void *buf, size_t n, int is_double, char *err, size_t err_n);
    int (*bcast)(void *buf, size_t bytes, char *err, size_t err_n);
    int (*barrier)(char *err, size_t err_n);
    int (*send)(int to, int tag, const void *buf, size_t n, char *err, size_t err_n);
    /* 1 if a message is waiting, 0 if not, -1 on error */
    int (*probe)(int from, int tag, int *src, size_t *n, char *err, size_t err_n);
    int (*recv)(int from, int tag, void *buf, size_t cap, size_t *n, char *err, size_t err_n);
    void (*abort)(int status);
    void (*finish)(void);
    void (*library)(char *buf, size_t n); /* "Open MPI v4.1.4, ..." (callable before init) */
} dist_backend;

#endif
