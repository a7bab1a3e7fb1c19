#!/usr/bin/env bash
# Builds bench/onednn/onednn_ref.c (the oneDNN reference of issue 24) into
# build/onednn_ref against Debian's libdnnl-dev (oneDNN 2.6.3, OpenMP build),
# then runs its gradient check on the three workloads unless --no-check.
# Usage: scripts/build-onednn-ref.sh [--no-check]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f /usr/include/oneapi/dnnl/dnnl.h ] || scripts/setup.sh   # libdnnl-dev is in its PKGS
mkdir -p build
flags=$(pkg-config --cflags --libs dnnl 2>/dev/null || echo "-ldnnl")
cc=${CC:-gcc}
src=bench/onednn/onednn_ref.c
if [ ! -x build/onednn_ref ] || [ "$src" -nt build/onednn_ref ] || [ "$0" -nt build/onednn_ref ]; then
  $cc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -march=native -fopenmp -Wall -Wextra -o build/onednn_ref "$src" $flags -lm
fi
if [ "${1:-}" != "--no-check" ]; then
  for w in lstm gru lstm_2layer; do
    OMP_NUM_THREADS=1 build/onednn_ref --check --workload "$w"
  done
fi
