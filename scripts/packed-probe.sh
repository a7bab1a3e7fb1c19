#!/usr/bin/env bash
# Builds bench/onednn/packed_probe.c against build/libmnemo.so and runs it:
# the lstm and gru recurrent products (GFLOP/s) through mnemo's product
# rule, OpenBLAS, the packed product (ops/packed.c) and oneDNN's matmul
# primitive with packed weights. Usage: scripts/packed-probe.sh [THREADS] [CALLS]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/libmnemo.so ] || scripts/build.sh
${CC:-gcc} -std=gnu11 -O2 -march=native -fopenmp -I. -Iinclude -o build/packed_probe bench/onednn/packed_probe.c \
  -Lbuild -lmnemo -Wl,-rpath,"$PWD/build" -ldnnl -lm
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} load: $(cut -d' ' -f1-3 /proc/loadavg)"
build/packed_probe "${1:-1}" "${2:-200}"
