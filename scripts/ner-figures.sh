#!/usr/bin/env bash
# The figures of docs/ner.md: `mnemo train --model ner` on the Brown-derived
# CoNLL split (scripts/brown-to-conll.py) with and without the CRF and with
# and without character features, same data, sizes, seed and epochs. Each
# run's full output goes to $OUT/ner-<config>.txt; a summary (test entity
# micro F1, mean seconds and sentences per second of the epochs after the
# first) is printed. Usage: scripts/ner-figures.sh [LIMIT] [EPOCHS] [THREADS] [EVAL_LIMIT]
set -euo pipefail
cd "$(dirname "$0")/.."
limit=${1:-2000} epochs=${2:-4} threads=${3:-2} eval_limit=${4:-1000}
out=${OUT:-build/ner-figures}
mkdir -p "$out"
for cfg in "crf chars:" "crf nochars:--char-filters 0" "nocrf chars:--no-crf" "nocrf nochars:--no-crf --char-filters 0"; do
  name=${cfg%%:*} flags=${cfg#*:}
  # shellcheck disable=SC2086
  build/mnemo train --model ner --limit "$limit" --eval-limit "$eval_limit" --epochs "$epochs" --threads "$threads" $flags > "$out/ner-${name// /-}.txt"
  awk -v name="$name" '
    /^epoch / { n++; if (n > 1) { s += $8; r += substr($10, 2); k++ } }
    /^test: .*entity level/ { t = 1 }
    t && /micro avg/ { f = $5; t = 0 }
    END { printf "%-14s test entity micro F1 %s, %.1f s per epoch, %.0f sentences/s (epochs 2..%d)\n", name, f, s / k, r / k, n }' \
    "$out/ner-${name// /-}.txt"
done
