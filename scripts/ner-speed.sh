#!/usr/bin/env bash
# Training speed of `mnemo train --model ner` against the PyTorch BiLSTM-CRF
# of scripts/ner-torch-bench.py (same sizes, data, batches, buckets, CRF
# forward algorithm batched), alternating ROUNDS times on one machine;
# prints the epoch lines of both (sentences per second of training; mnemo's
# epoch time leaves out its dev evaluation). Usage:
#   scripts/ner-speed.sh [LIMIT] [EPOCHS] [THREADS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
limit=${1:-1000} epochs=${2:-2} threads=${3:-1} rounds=${4:-2}
export OMP_WAIT_POLICY=passive
for r in $(seq "$rounds"); do
  echo "round $r: mnemo"
  build/mnemo train --model ner --limit "$limit" --eval-limit 100 --epochs "$epochs" --threads "$threads" | grep '^epoch'
  echo "round $r: pytorch"
  /usr/bin/python3 scripts/ner-torch-bench.py --limit "$limit" --epochs "$epochs" --threads "$threads" | grep -E '^(torch|epoch)'
done
