#!/usr/bin/env bash
# Builds bench/split_probe.c against build/libmnemo.a and runs it: an lstm
# time step's recurrent products (B 32, H 256) on 2 threads pinned one per
# core, cut by rows (the library's rule) or by hidden units (half of W_hh
# per core, a barrier a step), 64 steps a repetition, per-step min and
# median. Usage: scripts/split-probe.sh [REPS] [POLLUTE_KIB_PER_STEP_AND_THREAD]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/libmnemo.a ] || scripts/build.sh
${CC:-gcc} -std=gnu11 -O2 -march=native -fopenmp -I. -Iinclude -o build/split_probe bench/split_probe.c \
  build/libmnemo.a -lopenblas -lm $(pkg-config --libs dnnl 2>/dev/null || echo -ldnnl)
echo "$(date -u +%H:%M:%S) UTC, cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), load: $(cut -d' ' -f1-3 /proc/loadavg)"
build/split_probe "${1:-200}" "${2:-0}"
