#!/usr/bin/env bash
# Training speed of `mnemo train --model ner` against the PyTorch BiLSTM-CRF
# of scripts/ner-torch-bench.py (same sizes, data, batches, buckets, CRF
# forward algorithm batched). Each round starts both at once (one thread
# each, so a shared machine loads them alike) and prints their epoch lines
# (sentences per second of training; mnemo's epoch time leaves out its dev
# evaluation), then the ratio of epoch EPOCHS (the first compiles mnemo's
# graphs). The CPU, OpenBLAS's core type and the load go first. Usage:
#   scripts/ner-speed.sh [LIMIT] [EPOCHS] [THREADS] [ROUNDS] [MNEMO]
set -euo pipefail
cd "$(dirname "$0")/.."
limit=${1:-1000} epochs=${2:-2} threads=${3:-1} rounds=${4:-2} mnemo=${5:-build/mnemo}
export OMP_WAIT_POLICY=passive
tmp=$(mktemp -d /tmp/ner-speed-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$rounds"); do
  "$mnemo" train --model ner --limit "$limit" --eval-limit 100 --epochs "$epochs" --threads "$threads" > "$tmp/m.txt" &
  /usr/bin/python3 scripts/ner-torch-bench.py --limit "$limit" --epochs "$epochs" --threads "$threads" > "$tmp/t.txt" &
  wait
  echo "round $r (load $(cut -d' ' -f1 /proc/loadavg)): mnemo"
  grep '^epoch' "$tmp/m.txt"
  echo "round $r: pytorch"
  grep -E '^(torch|epoch)' "$tmp/t.txt"
  rate() { grep "^epoch $epochs:" "$1" | sed -E 's/.*\(([0-9]+) sentences\/s\).*/\1/'; }
  awk -v r="$r" -v e="$epochs" -v m="$(rate "$tmp/m.txt")" -v t="$(rate "$tmp/t.txt")" \
    'BEGIN { printf "round %d, epoch %d: mnemo %s, PyTorch %s sentences/s: mnemo/PyTorch %.2f\n", r, e, m, t, m / t }'
done
