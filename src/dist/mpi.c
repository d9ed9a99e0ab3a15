/* mpi.c: the MPI calls behind src/cli/dist.h (cg_dist_mpi), for Open MPI. make compiles
 * and links it into the cartoongan command only when it finds mpicc (mk/mpi.mk); the
 * library never sees MPI. Errors come back as return codes (MPI_ERRORS_RETURN) with
 * MPI's own text, so that dist.c can say which rank and call failed before stopping the
 * job. Counts are ints in MPI, so larger buffers go in pieces. */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "cli/dist.h"

/* The largest piece one call moves (elements): well inside MPI's int counts. */
#define PIECE (1 << 30)

static int check(int rc, char *err, size_t err_n) {
    if (rc == MPI_SUCCESS) return 0;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "error code %d", rc);
    snprintf(err, err_n, "%s", text);
    return -1;
}

static int mpi_init(int *rank, int *size, char *err, size_t err_n) {
    int provided = 0;
    /* SERIALIZED: cartoonize's rank 0 hands out work from a second thread while its main
     * thread, which makes no MPI call meanwhile, stylizes */
    if (check(MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided), err, err_n)) return -1;
    if (provided < MPI_THREAD_SERIALIZED) {
        snprintf(err, err_n, "this MPI cannot be called from more than one thread (MPI_THREAD_SERIALIZED)");
        MPI_Finalize();
        return -1;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
    return 0;
}

static int mpi_sum(void *buf, size_t n, int is_double, char *err, size_t err_n) {
    const size_t el = is_double ? sizeof(double) : sizeof(float);
    for (size_t off = 0; off < n; off += PIECE) {
        size_t k = n - off < PIECE ? n - off : PIECE;
        if (check(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * el, (int)k, is_double ? MPI_DOUBLE : MPI_FLOAT, MPI_SUM,
                                MPI_COMM_WORLD),
                  err, err_n))
            return -1;
    }
    return 0;
}

static int mpi_bcast(void *buf, size_t bytes, char *err, size_t err_n) {
    for (size_t off = 0; off < bytes; off += PIECE) {
        size_t k = bytes - off < PIECE ? bytes - off : PIECE;
        if (check(MPI_Bcast((char *)buf + off, (int)k, MPI_BYTE, 0, MPI_COMM_WORLD), err, err_n)) return -1;
    }
    return 0;
}

static int mpi_barrier(char *err, size_t err_n) { return check(MPI_Barrier(MPI_COMM_WORLD), err, err_n); }

static int mpi_send(int to, int tag, const void *buf, size_t n, char *err, size_t err_n) {
    /* the messages are small (DIST_MAX_MESSAGE): Open MPI sends them eagerly, so this
     * returns without waiting for the receiver */
    return check(MPI_Send(buf, (int)n, MPI_BYTE, to, tag, MPI_COMM_WORLD), err, err_n);
}

static int mpi_probe(int from, int tag, int *src, size_t *n, char *err, size_t err_n) {
    int flag = 0, count = 0;
    MPI_Status st;
    if (check(MPI_Iprobe(from < 0 ? MPI_ANY_SOURCE : from, tag, MPI_COMM_WORLD, &flag, &st), err, err_n)) return -1;
    if (!flag) return 0;
    MPI_Get_count(&st, MPI_BYTE, &count);
    if (src) *src = st.MPI_SOURCE;
    if (n) *n = (size_t)count;
    return 1;
}

static int mpi_recv(int from, int tag, void *buf, size_t cap, size_t *n, char *err, size_t err_n) {
    MPI_Status st;
    int count = 0;
    if (check(MPI_Recv(buf, (int)(cap < INT_MAX ? cap : INT_MAX), MPI_BYTE, from < 0 ? MPI_ANY_SOURCE : from, tag,
                       MPI_COMM_WORLD, &st),
              err, err_n))
        return -1;
    MPI_Get_count(&st, MPI_BYTE, &count);
    if (n) *n = (size_t)count;
    return 0;
}

static void mpi_abort(int status) { MPI_Abort(MPI_COMM_WORLD, status); }

static void mpi_finish(void) {
    int done = 0;
    MPI_Finalized(&done);
    if (!done) MPI_Finalize();
}

/* The library's version, up to its first comma ("Open MPI v4.1.4"). */
static void mpi_library(char *buf, size_t n) {
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (MPI_Get_library_version(v, &len) != MPI_SUCCESS) snprintf(v, sizeof v, "MPI");
    v[strcspn(v, ",\n")] = '\0';
    snprintf(buf, n, "%s", v);
}

const dist_backend cg_dist_mpi = {mpi_init,  mpi_sum,  mpi_bcast, mpi_barrier, mpi_send,
                                  mpi_probe, mpi_recv, mpi_abort, mpi_finish,  mpi_library};
