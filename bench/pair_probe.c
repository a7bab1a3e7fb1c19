/* bench/pair_probe.c: a segment's recomputed recurrent products (issue 17,
 * lstm_long: 16 independent products [64,512] x packed [512,2048]) in turn,
 * each cut in row halves over 2 threads without a barrier (as a chain ran
 * them), against side by side, each whole on one thread (as the schedule
 * runs them since session 14): wall time per product, the median of the
 * per-round ratios, the threads' CPU time per product (less sensitive to
 * other processes on the cores), and whether the bits agree. Build and run:
 *   gcc -std=gnu11 -O2 -march=native -fopenmp -I. -Iinclude -o build/pair_probe bench/pair_probe.c \
 *       -Lbuild -lmnemo -Wl,-rpath,"$PWD/build" -lm && build/pair_probe [ROUNDS] [PRODUCTS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include <time.h>
static double tcpu(void) { struct timespec ts; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); return ts.tv_sec + 1e-9 * ts.tv_nsec; }
#include "ops/gemm.h"
int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 50, NPROD = argc > 2 ? atoi(argv[2]) : 16;
    int64_t M = 64, N = 2048, K = 512, np = (N + 15) / 16;
    float *W = aligned_alloc(64, N * K * 4), *P = aligned_alloc(64, np * K * 16 * 4);
    float **A = malloc(NPROD * sizeof *A), **C = malloc(NPROD * sizeof *C), **C2 = malloc(NPROD * sizeof *C2);
    for (int64_t i = 0; i < N * K; i++) W[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    mn__pack_weight(W, true, N, K, P, 1);
    for (int i = 0; i < NPROD; i++) {
        A[i] = aligned_alloc(64, M * K * 4); C[i] = aligned_alloc(64, M * N * 4); C2[i] = aligned_alloc(64, M * N * 4);
        for (int64_t j = 0; j < M * K; j++) A[i][j] = (float)((j * 31 + i) % 997) / 997.0f - 0.5f;
    }
    int isa = mn__packed_isa();
    double cpu_a = 0, cpu_b = 0; double *ratio = malloc(reps * sizeof *ratio); double best_a = 1e9, best_b = 1e9, sum_a = 0, sum_b = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = omp_get_wtime();
        #pragma omp parallel num_threads(2)
        {
            int t = omp_get_thread_num();
            double c0 = tcpu();
            for (int i = 0; i < NPROD; i++)
                mn__packed_gemm(isa, 32, N, K, A[i] + t * 32 * K, K, P, C[i] + t * 32 * N, N, 1);
            double c1 = tcpu();
            #pragma omp atomic
            cpu_a += c1 - c0;
        }
        double t1 = omp_get_wtime();
        #pragma omp parallel num_threads(2)
        {
            int t = omp_get_thread_num();
            double c0 = tcpu();
            for (int i = t; i < NPROD; i += 2) mn__packed_gemm(isa, M, N, K, A[i], K, P, C2[i], N, 1);
            double c1 = tcpu();
            #pragma omp atomic
            cpu_b += c1 - c0;
        }
        double t2 = omp_get_wtime();
        if (r) { sum_a += t1 - t0; sum_b += t2 - t1; } ratio[r] = (t2 - t1) / (t1 - t0);
        if (t1 - t0 < best_a) best_a = t1 - t0;
        if (t2 - t1 < best_b) best_b = t2 - t1;
    }
    for (int i = 0; i < reps; i++) for (int j = i + 1; j < reps; j++) if (ratio[j] < ratio[i]) { double x = ratio[i]; ratio[i] = ratio[j]; ratio[j] = x; }
    printf("median per-rep ratio (side by side / in turn) %.3f (quartiles %.3f %.3f)\n", ratio[reps / 2], ratio[reps / 4], ratio[3 * reps / 4]);
    printf("thread cpu per product: in turn %.3f ms, side by side %.3f ms, ratio %.3f\n", 1e3 * cpu_a / reps / NPROD, 1e3 * cpu_b / reps / NPROD, cpu_b / cpu_a);
    int same = 1;
    for (int i = 0; i < NPROD; i++) same &= memcmp(C[i], C2[i], M * N * 4) == 0;
    printf("isa %d, %d products: in turn (row halves) best %.3f ms/product mean %.3f; side by side best %.3f mean %.3f; ratio best %.3f mean %.3f; bits same %d\n",
           isa, NPROD, 1e3 * best_a / NPROD, 1e3 * sum_a / (reps - 1) / NPROD, 1e3 * best_b / NPROD, 1e3 * sum_b / (reps - 1) / NPROD,
           best_b / best_a, sum_b / sum_a, same);
    return 0;
}
