/* fma_peak.c: the machine's measured float32 FMA peak, for bench/bench.sh.
 *
 *     build/fma_peak [threads] [seconds]      (defaults: one thread per CPU, 1 s)
 *
 * Each thread runs independent chains of vector FMAs (enough to cover the FMA latency on
 * two FMA ports), all at once; two flops count per FMA lane. With AVX2+FMA (8 lanes)
 * always, and with AVX-512F (16 lanes) too when the CPU has it. Each thread's rate is its
 * flops over its own CPU time (CLOCK_THREAD_CPUTIME_ID), and the peak is the sum of the
 * threads' rates: time other processes take from a core does not count, so a busy shared
 * machine still measures its cores' peak. The time is split into TRIALS trials and the
 * best counts. Prints one line per ISA: "avx2 GFLOPS N" and "avx512 GFLOPS N", and the
 * same from wall-clock time ("avx2_wall GFLOPS N"): much lower means a busy machine. */
#define _POSIX_C_SOURCE 200809L
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define CHAINS 12     /* independent accumulators: > 2 ports x 4-5 cycles latency */
#define INNER 20000   /* FMAs per chain between clock reads */
#define TRIALS 5

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static double now(void) { return clock_s(CLOCK_THREAD_CPUTIME_ID); } /* this thread's CPU time */

typedef struct {
    int avx512;
    double seconds, flops, elapsed, wall;
    pthread_barrier_t *start;
} job;

static volatile float sink;

__attribute__((target("avx2,fma"))) static double run_avx2(double seconds) {
    __m256 acc[CHAINS], a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_set1_ps((float)c);
    double t0 = now(), n = 0;
    do {
        for (int i = 0; i < INNER; i++)
#pragma GCC unroll 16
            for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
        n += (double)INNER * CHAINS;
    } while (now() - t0 < seconds);
    __m256 s = acc[0];
    for (int c = 1; c < CHAINS; c++) s = _mm256_add_ps(s, acc[c]);
    sink = _mm256_cvtss_f32(s);
    return n * 8 * 2;
}

__attribute__((target("avx512f"))) static double run_avx512(double seconds) {
    __m512 acc[CHAINS], a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ps((float)c);
    double t0 = now(), n = 0;
    do {
        for (int i = 0; i < INNER; i++)
#pragma GCC unroll 16
            for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
        n += (double)INNER * CHAINS;
    } while (now() - t0 < seconds);
    __m512 s = acc[0];
    for (int c = 1; c < CHAINS; c++) s = _mm512_add_ps(s, acc[c]);
    sink = _mm512_reduce_add_ps(s);
    return n * 16 * 2;
}

static void *worker(void *arg) {
    job *j = arg;
    pthread_barrier_wait(j->start);
    double t0 = now(), w0 = clock_s(CLOCK_MONOTONIC);
    j->flops = j->avx512 ? run_avx512(j->seconds) : run_avx2(j->seconds);
    j->elapsed = now() - t0;
    j->wall = clock_s(CLOCK_MONOTONIC) - w0;
    return NULL;
}

/* GFLOP/s of all threads together: the sum of each thread's flops over its CPU time;
 * *wall: all flops over the longest thread's wall-clock time. */
static double measure(int threads, double seconds, int avx512, double *wall) {
    pthread_t tid[256];
    job jobs[256];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads);
    for (int i = 0; i < threads; i++) {
        jobs[i] = (job){avx512, seconds, 0, 0, 0, &start};
        if (pthread_create(&tid[i], NULL, worker, &jobs[i])) {
            fprintf(stderr, "fma_peak: cannot create thread %d\n", i);
            exit(1);
        }
    }
    double rate = 0, flops = 0, longest = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        rate += jobs[i].flops / jobs[i].elapsed;
        flops += jobs[i].flops;
        if (jobs[i].wall > longest) longest = jobs[i].wall;
    }
    pthread_barrier_destroy(&start);
    *wall = flops / longest / 1e9;
    return rate / 1e9;
}

int main(int argc, char **argv) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = argc > 1 ? atoi(argv[1]) : (int)(ncpu > 0 ? ncpu : 1);
    double seconds = argc > 2 ? atof(argv[2]) : 1.0;
    if (threads < 1 || threads > 256 || !(seconds > 0)) {
        fprintf(stderr, "usage: fma_peak [threads (1-256)] [seconds]\n");
        return 2;
    }
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
        fprintf(stderr, "fma_peak: this CPU has no AVX2+FMA\n");
        return 1;
    }
    printf("threads %d\n", threads);
    for (int isa = 0; isa < 1 + !!__builtin_cpu_supports("avx512f"); isa++) {
        double best = 0, best_wall = 0, wall;
        for (int k = 0; k < TRIALS; k++) {
            double g = measure(threads, seconds / TRIALS, isa, &wall);
            if (g > best) best = g;
            if (wall > best_wall) best_wall = wall;
        }
        printf("%s GFLOPS %.1f\n%s_wall GFLOPS %.1f\n", isa ? "avx512" : "avx2", best,
               isa ? "avx512" : "avx2", best_wall);
    }
    return 0;
}
