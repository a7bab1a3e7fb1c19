#!/usr/bin/env bash
# Builds bench/packed_rows.c against build/libmnemo.so and runs it: S
# packed products of 64 rows (lstm_long's recomputed recurrent products,
# K 512, N 2048) against one of S*64 rows, per row, and their bits.
# Usage: scripts/packed-rows.sh [THREADS] [ROUNDS] [B (rows a product, 64)]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/libmnemo.so ] || scripts/build.sh
${CC:-gcc} -std=gnu11 -O2 -march=native -fopenmp -I. -Iinclude -o build/packed_rows bench/packed_rows.c \
  -Lbuild -lmnemo -Wl,-rpath,"$PWD/build" -lm
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) load: $(cut -d' ' -f1-3 /proc/loadavg) $(date -u +%H:%M)"
build/packed_rows "${1:-2}" "${2:-20}" "${3:-64}"
