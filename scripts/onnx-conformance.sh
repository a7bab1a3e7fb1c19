#!/usr/bin/env bash
# Runs every ONNX backend test of libonnx-testdata through mnemo's importer
# and prints "N passed, M failed, K unsupported" per folder (node,
# pytorch-converted, pytorch-operator, simple); -v lists each test and why.
#   scripts/onnx-conformance.sh [-v] [--passes OUT]
# tests/onnx/passes.txt (the suite's guard) is what `--passes OUT` writes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
data=/usr/share/libonnx-testdata/data
OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive build/tests/onnx_conformance "$@" \
  "$data/node" "$data/pytorch-converted" "$data/pytorch-operator" "$data/simple"
