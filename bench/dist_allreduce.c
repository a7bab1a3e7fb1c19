/* bench/dist_allreduce.c: allreduce time against message size on this
 * machine, for scripts/dist-bench.sh (the cost model of docs/distributed.md).
 * Each size: blocking MPI_Allreduce and MPI_Iallreduce + MPI_Wait of f32
 * sums, the median of `reps` timed calls after a warm-up, as JSON lines on
 * rank 0: {"bytes", "ranks", "allreduce_us", "iallreduce_us"}. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_us(float *buf, int n, int reps, int nonblocking)
{
    double t[64];
    for (int r = -2; r < reps; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        if (nonblocking) {
            MPI_Request q;
            MPI_Iallreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &q);
            MPI_Wait(&q, MPI_STATUS_IGNORE);
        } else MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        double dt = MPI_Wtime() - t0, worst = 0;
        MPI_Allreduce(&dt, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (r >= 0) t[r] = worst * 1e6;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp);
    return t[reps / 2];
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    long max_bytes = argc > 1 ? atol(argv[1]) : 64L << 20;
    float *buf = calloc((size_t)max_bytes / 4 + 1, sizeof *buf);
    for (long bytes = 4; bytes <= max_bytes; bytes *= 4) {
        int n = (int)(bytes / 4), reps = bytes >= (1L << 22) ? 7 : 21;
        double b = median_us(buf, n, reps, 0), nb = median_us(buf, n, reps, 1);
        if (rank == 0) printf("{\"bytes\": %ld, \"ranks\": %d, \"allreduce_us\": %.1f, \"iallreduce_us\": %.1f}\n", bytes, size, b, nb);
        fflush(stdout);
    }
    free(buf);
    MPI_Finalize();
    return 0;
}
