/* bench/packed_rows.c: does one packed product over S segments' rows pay
 * against S products of B rows each (issue 17, the recomputed recurrent
 * products of lstm_long: [64, 512] x packed W_hh^T -> [64, 2048])? Times,
 * best of REPS rounds (wall clock), S products of B rows (each reading its
 * adjacent rows of one A, writing its own C) against one product of S*B
 * rows, on THREADS threads, and checks that the rows of the batched
 * product equal the separate ones bit for bit (and of a 1-row product).
 * Built and run by scripts/packed-rows.sh (arguments: THREADS ROUNDS B). */
#include "ops/gemm.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2, reps = argc > 2 ? atoi(argv[2]) : 20;
    int64_t B = argc > 3 ? atoi(argv[3]) : 64, K = 512, N = 2048, Ss[] = { 1, 2, 4, 8, 16, 32 };
    int isa = mn__packed_isa();
    int64_t Smax = 32, M = Smax * B;
    float *A = malloc(sizeof(float) * (size_t)(M * K)), *W = malloc(sizeof(float) * (size_t)(N * K));
    float *C1 = malloc(sizeof(float) * (size_t)(M * N)), *C2 = malloc(sizeof(float) * (size_t)(M * N));
    float *P = aligned_alloc(64, sizeof(float) * (size_t)(N * K));
    for (int64_t j = 0; j < M * K; j++) A[j] = (float)((j * 37) % 23) / 23.0f - 0.5f;
    for (int64_t j = 0; j < N * K; j++) W[j] = (float)((j * 11) % 17) / 17.0f - 0.5f;
    mn__pack_weight(W, true, N, K, P, threads);
    memset(C1, 0, sizeof(float) * (size_t)(M * N));
    memset(C2, 0, sizeof(float) * (size_t)(M * N));
    printf("threads %d, packed isa %d, K %lld N %lld, B %lld rows a product, best of %d rounds\n", threads, isa,
           (long long)K, (long long)N, (long long)B, reps);
    double base = 0;
    for (size_t si = 0; si < sizeof Ss / sizeof *Ss; si++) {
        int64_t S = Ss[si];
        double sep = 1e9, one = 1e9;
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            for (int64_t s = 0; s < S; s++) mn__packed_gemm(isa, B, N, K, A + s * B * K, K, P, C1 + s * B * N, N, threads);
            double t1 = now();
            mn__packed_gemm(isa, S * B, N, K, A, K, P, C2, N, threads);
            double t2 = now();
            if (t1 - t0 < sep) sep = t1 - t0;
            if (t2 - t1 < one) one = t2 - t1;
        }
        if (S == 1) base = sep;
        int same = memcmp(C1, C2, sizeof(float) * (size_t)(S * B * N)) == 0;
        printf("S %2lld: %2lld x [%lld rows] %8.3f ms (%.4f ms each, %.2f us/row)   one [%lld rows] %8.3f ms (%.2f us/row)"
               "   one/sep %.3f   bits %s\n", (long long)S, (long long)S, (long long)B, sep * 1e3, sep * 1e3 / (double)S,
               sep * 1e6 / (double)(S * B), (long long)(S * B), one * 1e3, one * 1e6 / (double)(S * B), one / sep,
               same ? "equal" : "DIFFER");
    }
    (void)base;
    /* In context: a segment of 16 steps, backward order; per step the
     * backward's own traffic (a dh product [64, 2048] x packed W_hh [2048 ->
     * 512] and a read of the step's gates, as the cell does). Separate: the
     * clone product of the step just before its cell; batched by S: one
     * product of S steps' rows when the first of them (the last step) is
     * reached, each step reading its row block. */
    for (int64_t S = 2; S <= 16; S *= 2) {
        float *P2 = aligned_alloc(64, sizeof(float) * (size_t)(N * K)), *dG = malloc(sizeof(float) * (size_t)(B * N));
        float *dh = malloc(sizeof(float) * (size_t)(B * K)), *Cs = malloc(sizeof(float) * (size_t)(B * N));
        for (int64_t j = 0; j < B * N; j++) dG[j] = (float)(j % 7) / 7.0f;
        mn__pack_weight(W, false, K, N, P2, threads);
        double sep = 1e9, one = 1e9, none = 1e9, sink = 0;
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            for (int64_t s = 15; s >= 0; s--) {
                mn__packed_gemm(isa, B, N, K, A + s * B * K, K, P, Cs, N, threads);
                for (int64_t j = 0; j < B * N; j += 16) sink += Cs[j];
                mn__packed_gemm(isa, B, K, N, dG, N, P2, dh, K, threads);
            }
            double t1 = now();
            for (int64_t s = 15; s >= 0; s--) {
                if (s % S == S - 1) mn__packed_gemm(isa, S * B, N, K, A + (s - S + 1) * B * K, K, P, C2 + (s - S + 1) * B * N, N, threads);
                for (int64_t j = 0; j < B * N; j += 16) sink += C2[s * B * N + j];
                mn__packed_gemm(isa, B, K, N, dG, N, P2, dh, K, threads);
            }
            double t2 = now();
            for (int64_t s = 15; s >= 0; s--) {
                for (int64_t j = 0; j < B * N; j += 16) sink += C2[s * B * N + j];
                mn__packed_gemm(isa, B, K, N, dG, N, P2, dh, K, threads);
            }
            double t3 = now();
            if (t1 - t0 < sep) sep = t1 - t0;
            if (t2 - t1 < one) one = t2 - t1;
            if (t3 - t2 < none) none = t3 - t2;
        }
        printf("in context, S %2lld: separate %.3f ms, batched %.3f ms, backward alone %.3f ms: recompute %.3f vs %.3f ms"
               " (batched/separate %.3f)%s\n", (long long)S, sep * 1e3, one * 1e3, none * 1e3, (sep - none) * 1e3, (one - none) * 1e3,
               (one - none) / (sep - none), sink == 12345 ? " " : "");
        free(P2); free(dG); free(dh); free(Cs);
    }
    /* As the executor runs a chain (graph/run.c): one team, each thread
     * its half of the rows (mn__packed_split's ROWS), no region per
     * product; with a barrier after each product (steps in successive
     * levels), or none (a level's solo steps: a segment's recomputed
     * products sit in one level and run in turn with no barrier). */
    for (int nb = 0; nb < 2; nb++)
    for (int64_t S = 2; S <= 16; S *= 2) {
        double sep = 1e9, one = 1e9;
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            #pragma omp parallel num_threads(threads)
            {
                int t = omp_get_thread_num(), n = omp_get_num_threads();
                for (int64_t s = 0; s < S; s++) {
                    int64_t m0 = B / 8 * t / n * 8, m1 = B / 8 * (t + 1) / n * 8;
                    mn__packed_gemm(isa, m1 - m0, N, K, A + (s * B + m0) * K, K, P, C1 + (s * B + m0) * N, N, 1);
                    if (!nb) {
                        #pragma omp barrier
                    }
                }
            }
            double t1 = now();
            #pragma omp parallel num_threads(threads)
            {
                int t = omp_get_thread_num(), n = omp_get_num_threads();
                int64_t m0 = S * B / 8 * t / n * 8, m1 = S * B / 8 * (t + 1) / n * 8;
                mn__packed_gemm(isa, m1 - m0, N, K, A + m0 * K, K, P, C2 + m0 * N, N, 1);
            }
            double t2 = now();
            if (t1 - t0 < sep) sep = t1 - t0;
            if (t2 - t1 < one) one = t2 - t1;
        }
        printf("team, %s, S %2lld: %2lld x [64 rows] %7.3f ms (%.2f us/row)   one [%lld rows] %7.3f ms (%.2f us/row)   one/sep %.3f   bits %s\n",
               nb ? "no barrier" : "barriers  ", (long long)S, (long long)S, sep * 1e3, sep * 1e6 / (double)(S * B), (long long)(S * B), one * 1e3,
               one * 1e6 / (double)(S * B), one / sep, memcmp(C1, C2, sizeof(float) * (size_t)(S * B * N)) ? "DIFFER" : "equal");
    }
    /* rows of a 1-row product (the W_ih per-step rows): equal to the batched rows? */
    int same1 = 1;
    for (int64_t i = 0; i < 64; i++) {
        float row[2048];
        mn__packed_gemm(isa, 1, N, K, A + i * 13 * K, K, P, row, N, threads);
        if (memcmp(row, C2 + i * 13 * N, sizeof row)) same1 = 0;
    }
    printf("1-row products against the %lld-row one: bits %s\n", (long long)M, same1 ? "equal" : "DIFFER");
    free(A); free(W); free(C1); free(C2); free(P);
    return 0;
}
