/* bench/onednn/restride_probe.c: the weight gradients whose A rows lie 4
 * KiB apart (A^T B, A = an LSTM's gate gradients [K, 4H], 4H = 1024), one
 * oneDNN sgemm call on A in place against mnemo's rule (mn__gemm: A copied
 * in chunks of rows to another stride, ops/matmul.c's mn__gemm_restride),
 * interleaved call by call, 32 MiB of other data written between calls,
 * best wall time of CALLS. Build and run (from the worktree, after
 * scripts/build.sh):
 *   gcc -std=gnu11 -O2 -march=native -fopenmp -I. -o build/restride_probe bench/onednn/restride_probe.c \
 *     -Lbuild -lmnemo -Wl,-rpath,$PWD/build -ldnnl -lm
 *   OMP_NUM_THREADS=1 build/restride_probe [CALLS] [THREADS] */
#include "ops/gemm.h"
#include <oneapi/dnnl/dnnl.h>
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

/* The CPU's model name (/proc/cpuinfo), or "?". */
static void cpu_name(char *buf, size_t n)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    snprintf(buf, n, "?");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            snprintf(buf, n, "%s", strchr(line, ':') + 2);
            buf[strcspn(buf, "\n")] = 0;
            break;
        }
    if (f) fclose(f);
}

/* One sgemm per thread on its half of M, as ops/matmul.c cuts it, A in place. */
static void direct(int threads, int M, int N, int K, const float *A, const float *B, float *C)
{
    if (threads == 1) {
        dnnl_sgemm('T', 'N', M, N, K, 1.0f, A, M, B, N, 1.0f, C, N);
        return;
    }
    #pragma omp parallel for num_threads(2)
    for (int t = 0; t < 2; t++) dnnl_sgemm('T', 'N', M / 2, N, K, 1.0f, A + t * M / 2, M, B, N, 1.0f, C + t * M / 2 * N, N);
}

int main(int argc, char **argv)
{
    int calls = argc > 1 ? atoi(argv[1]) : 20, threads = argc > 2 ? atoi(argv[2]) : 1;
    static const int shapes[][3] = { { 1024, 256, 1024 }, { 1024, 64, 1024 }, { 768, 256, 1024 } };
    mn__gemm_kinds k = mn__gemm_detect();
    float *A = malloc(4 << 22), *B = malloc(4 << 22), *C = malloc(4 << 22), *X = malloc(32 << 20);
    if (!A || !B || !C || !X) return 1;
    for (int i = 0; i < (1 << 22); i++) {
        A[i] = (float)(i % 7) * 0.1f;
        B[i] = (float)(i % 5) * 0.1f;
        C[i] = 0.0f;
    }
    char cpu[128];
    cpu_name(cpu, sizeof cpu);
    printf("cpu: %s, threads %d, OPENBLAS_CORETYPE=%s\n", cpu, threads, getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "unset");
    for (int s = 0; s < 3; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        double best[2] = { 1e9, 1e9 };
        for (int r = 0; r < calls; r++)
            for (int v = 0; v < 2; v++) {
                memset(X, r, 32 << 20);
                double t = now();
                if (v == 0) direct(threads, M, N, K, A, B, C);
                else mn__gemm(k, true, false, M, N, K, A, M, B, N, 1.0f, C, N, threads);
                t = now() - t;
                if (t < best[v]) best[v] = t;
            }
        double f = 2.0 * M * N * K;
        printf("%dx%dx%d A^T B (rows of A %d KiB apart): one sgemm %.0f GFLOP/s, mn__gemm (chunks of %lld rows) %.0f\n", M, N,
               K, M / 256, f / best[0] / 1e9, (long long)mn__gemm_restride(k, true, M / threads, N, K, M), f / best[1] / 1e9);
    }
    free(A); free(B); free(C); free(X);
    return 0;
}
