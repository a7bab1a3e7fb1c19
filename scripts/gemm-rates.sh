#!/usr/bin/env bash
# Builds bench/gemm_rates.c against build/libmnemo.a and runs it, pinned to
# CPU 0: the big products of an lstm_2layer step on one thread (GEMM_RATES_THREADS=2:
# the dw ways on 2 threads, wall time, unpinned).
# Usage: scripts/gemm-rates.sh [REPS] [POLLUTE_MIB] [proj,proj64,dx,dw] [DW_PADDED_LD] [DW_ONLY_N]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/libmnemo.a ] || scripts/build.sh
${CC:-gcc} -std=gnu11 -O3 -fno-math-errno -fno-trapping-math -DNDEBUG -march=native -fopenmp -DMNEMO_HAVE_DNNL -I. -Iinclude -Icore -Iops -o build/gemm_rates bench/gemm_rates.c \
  build/libmnemo.a -lopenblas -lm $(pkg-config --libs dnnl 2>/dev/null || echo -ldnnl)
echo "$(date -u +%H:%M:%S) UTC, cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), load: $(cut -d' ' -f1-3 /proc/loadavg)"
pin="taskset -c 0"   # GEMM_RATES_THREADS=2: the dw ways on 2 threads, not pinned
[ "${GEMM_RATES_THREADS:-1}" -gt 1 ] && pin=
$pin build/gemm_rates "${1:-20}" "${2:-8}" "${3:-proj,proj64,dx,dw}" "${4:-0}" "${5:-0}"
