/* bench/split_probe.c: an RNN time step's recurrent product on 2 threads,
 * cut by rows (the library's rule, ops/packed.c's mn__packed_split: 16 and
 * 16 of 32 rows, each thread streaming all of the packed W) against cut by
 * hidden units (each thread the gate columns of its half of the units, all
 * 32 rows, half of W that can stay in its core's L2 across time steps, and
 * a barrier a step: the next step needs the whole h). 64 sequential steps
 * a repetition, 2 threads pinned one per core, the library's packed kernel
 * (mn__packed_gemm on one thread for each thread's share). Forward: C [B,
 * 4H] = h [B, H] W_hh^T (K = H); backward: dh [B, H] = dG [B, 4H] W_hh (K =
 * 4H). Optionally each step also streams `pollute` KiB of fresh bytes per
 * thread (read and written, new addresses every step), as the cell between
 * two products does (its input projection rows, the activations it saves).
 * Prints per-step microseconds, min and median over the repetitions.
 * Usage: split_probe [REPS] [POLLUTE_KIB] (scripts/split-probe.sh). */
#define _GNU_SOURCE
#include "ops/gemm.h"
#include <omp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { B = 32, H = 256, G = 4 * H, STEPS = 64, PW = 16 };

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static float *buf(size_t n)
{
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    for (size_t i = 0; i < n; i++) p[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    return p;
}

/* The fresh bytes one step's cell would touch on thread t (read and write). */
static void pollute(float *pol, size_t per, int step, int t)
{
    if (!per) return;
    float *p = pol + ((size_t)step * 2 + (size_t)t) * per;
    for (size_t i = 0; i < per; i += 16) p[i] += 1.0f;
}

/* One repetition of a way on 2 threads: per-step seconds (thread 0's clock). */
typedef enum { ROWS_FWD, UNITS_FWD, UNITS_FWD1, ROWS_BWD, UNITS_BWD, ONE_FWD, ONE_BWD, BARRIER, NWAYS } way;
static const char *names[] = { "fwd rows 16+16, all W", "fwd units 128+128, half W + barrier",
                               "fwd units, own panels contiguous (1 call)", "bwd rows 16+16, all W",
                               "bwd units 128+128, half W + barrier", "fwd 1 thread, 32 rows", "bwd 1 thread, 32 rows",
                               "barrier (+ pollution) only" };

static double rep(way w, int isa, const float *Pf, const float *Pu, const float *Pb, float *h, float *C, float *dG, float *dh, float *pol,
                  size_t per)
{
    double secs = 0;
    int nth = w == ONE_FWD || w == ONE_BWD ? 1 : 2;
    #pragma omp parallel num_threads(nth)
    {
        int t = omp_get_thread_num();
        #pragma omp barrier
        double t0 = omp_get_wtime();
        for (int s = 0; s < STEPS; s++) {
            switch (w) {
            case ROWS_FWD:       /* thread t: rows 16t.., all 64 panels of W_hh^T (1 MiB) */
                mn__packed_gemm(isa, B / 2, G, H, h + (size_t)t * (B / 2) * H, H, Pf, C + (size_t)t * (B / 2) * G, G, 1);
                break;
            case UNITS_FWD:      /* thread t: every row, columns of units 128t.. of each gate (4 x 8 panels, 512 KiB) */
                for (int g = 0; g < 4; g++)
                    mn__packed_gemm(isa, B, H / 2, H, h, H, Pf + ((size_t)g * (H / PW) + (size_t)t * (H / 2 / PW)) * H * PW,
                                    C + g * H + t * (H / 2), G, 1);
                break;
            case UNITS_FWD1:     /* the same panels packed contiguously per thread: one call of 32 panels, C_t [B, 2H] */
                mn__packed_gemm(isa, B, G / 2, H, h, H, Pu + (size_t)t * (G / 2) * H, C + (size_t)t * B * (G / 2), G / 2, 1);
                break;
            case BARRIER: break;
            case ROWS_BWD:       /* thread t: rows 16t.., all 16 panels of W_hh (K 1024: 1 MiB) */
                mn__packed_gemm(isa, B / 2, H, G, dG + (size_t)t * (B / 2) * G, G, Pb, dh + (size_t)t * (B / 2) * H, H, 1);
                break;
            case UNITS_BWD:      /* thread t: every row, dh's columns of units 128t.. (8 panels, 512 KiB) */
                mn__packed_gemm(isa, B, H / 2, G, dG, G, Pb + (size_t)t * (H / 2 / PW) * G * PW, dh + t * (H / 2), H, 1);
                break;
            case ONE_FWD: mn__packed_gemm(isa, B, G, H, h, H, Pf, C, G, 1); break;
            case ONE_BWD: mn__packed_gemm(isa, B, H, G, dG, G, Pb, dh, H, 1); break;
            }
            pollute(pol, per, s, t);
            if (w == UNITS_FWD || w == UNITS_FWD1 || w == UNITS_BWD || w == BARRIER) {
                #pragma omp barrier
            }
        }
        if (t == 0) secs = (omp_get_wtime() - t0) / STEPS;
        #pragma omp barrier
    }
    return secs;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 200;
    size_t per = (size_t)(argc > 2 ? atoi(argv[2]) : 0) * 1024 / sizeof(float);
    int isa = mn__packed_isa();
    #pragma omp parallel num_threads(2)
    {
        cpu_set_t set;           /* one thread per core */
        CPU_ZERO(&set);
        CPU_SET(omp_get_thread_num(), &set);
        sched_setaffinity(0, sizeof set, &set);
    }
    float *W = buf((size_t)G * H), *Pf = buf((size_t)G * H), *Pb = buf((size_t)G * H);
    mn__pack_weight(W, true, G, H, Pf, 1);        /* C = h W^T: N 4H, K H */
    mn__pack_weight(W, false, H, G, Pb, 1);       /* dh = dG W: N H, K 4H */
    float *Pu = buf((size_t)G * H);               /* Pf's panels, thread 0's 32 then thread 1's */
    for (int t = 0; t < 2; t++)
        for (int g = 0; g < 4; g++)
            memcpy(Pu + ((size_t)t * 32 + (size_t)g * 8) * H * PW, Pf + ((size_t)g * 16 + (size_t)t * 8) * H * PW,
                   (size_t)8 * H * PW * sizeof(float));
    float *h = buf((size_t)B * H), *C = buf((size_t)B * G), *dG = buf((size_t)B * G), *dh = buf((size_t)B * H);
    float *pol = per ? buf(per * 2 * STEPS) : NULL;
    double *t = malloc((size_t)reps * sizeof *t);
    printf("B %d, H %d, %d steps a repetition, %d repetitions, %zu KiB polluted per step and thread, isa %d\n", B, H, STEPS,
           reps, per * sizeof(float) / 1024, isa);
        /* the ways interleaved repetition by repetition, so load hits them alike */
    double *all = malloc((size_t)reps * NWAYS * sizeof *all);
    for (int r = 0; r < reps; r++)
        for (int w = 0; w < NWAYS; w++) all[(size_t)w * reps + r] = rep((way)w, isa, Pf, Pu, Pb, h, C, dG, dh, pol, per);
    for (int w = 0; w < NWAYS; w++) {
        memcpy(t, all + (size_t)w * reps, (size_t)reps * sizeof *t);
        qsort(t, (size_t)reps, sizeof *t, cmp);
        printf("%-44s min %7.2f us  median %7.2f us\n", names[w], 1e6 * t[0], 1e6 * t[reps / 2]);
    }
    return 0;
}
