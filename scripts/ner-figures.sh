#!/usr/bin/env bash
# The figures of docs/ner.md: `mnemo train --model ner` on the Brown-derived
# CoNLL split (scripts/brown-to-conll.py) with and without the CRF and with
# and without character features: same data (the first LIMIT training
# sentences; 0: all), sizes, seed 1 and a fixed number of EPOCHS, the
# weights of the best dev epoch, the whole dev and test splits unless
# EVAL_LIMIT. Two runs at a time (the CRF pair, then the softmax pair), each
# on THREADS threads under `nice -n 10`; with one thread a run's numbers do
# not depend on the machine's load. Each run's command and full output go to
# $OUT/<config>.txt; a summary line per run (test entity micro F1 with P / R,
# dev F1 by epoch) is printed. Usage:
#   scripts/ner-figures.sh [LIMIT] [EPOCHS] [THREADS] [EVAL_LIMIT] [MNEMO]
set -euo pipefail
cd "$(dirname "$0")/.."
limit=${1:-20000} epochs=${2:-4} threads=${3:-1} eval_limit=${4:-0} mnemo=${5:-build/mnemo}
out=${OUT:-build/ner-figures}
mkdir -p "$out"
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; load $(cut -d' ' -f1-3 /proc/loadavg)"
run() {
  local name=$1
  shift
  local cmd=(train --model ner --limit "$limit" --epochs "$epochs" --threads "$threads" --eval-limit "$eval_limit" --seed 1 "$@")
  { echo "command: mnemo ${cmd[*]}"; echo "start: $(date -u) load: $(cut -d' ' -f1-3 /proc/loadavg)"; } > "$out/$name.txt"
  nice -n 10 "$mnemo" "${cmd[@]}" >> "$out/$name.txt" 2>&1
  echo "end: $(date -u) load: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/$name.txt"
}
run crf-chars & run crf-nochars --char-filters 0 & wait
run nocrf-chars --no-crf & run nocrf-nochars --no-crf --char-filters 0 & wait
for name in crf-chars crf-nochars nocrf-chars nocrf-nochars; do
  awk -v name="$name" '/^epoch / { split($0, a, "dev entity F1 "); split(a[2], b, " "); dev = dev (dev == "" ? "" : ", ") b[1] }
    /^test: .*entity level/ { t = 1 } t && /micro avg/ { f = $5 " (P " $3 ", R " $4 ")"; t = 0 }
    END { printf "%-14s test entity micro F1 %s; dev F1 by epoch %s\n", name, f, dev }' "$out/$name.txt"
done
