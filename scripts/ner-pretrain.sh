#!/usr/bin/env bash
# Issue 23, example 3: the NER tagger's word layer initialised from
# pre-trained word vectors against a random start, F1 after equal time.
# The vectors come from unlabelled text (scripts/ner-word-vectors.py:
# PPMI + SVD over the words of the whole Brown-derived train.conll, its
# tags not read); the tagger then trains on the labels of the first LIMIT
# sentences only, from a random start and from the vectors (--vectors),
# both at once for SECONDS each (one thread each, so a shared machine loads
# them alike), and the test report of each is printed. Usage:
#   scripts/ner-pretrain.sh [LIMIT] [SECONDS] [EVAL_LIMIT] [VECTORS] [MNEMO]
set -euo pipefail
cd "$(dirname "$0")/.."
limit=${1:-2000} seconds=${2:-300} eval_limit=${3:-500} mnemo=${5:-build/mnemo}
data=${MNEMO_DATA:-$HOME/.cache/mnemo}/brown-ner
out=${OUT:-build/ner-pretrain}
vectors=${4:-$out/brown-ppmi100.txt}
mkdir -p "$out"
[ -s "$vectors" ] || /usr/bin/python3 scripts/ner-word-vectors.py "$vectors" "$data/train.conll"
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; load $(cut -d' ' -f1-3 /proc/loadavg)"
export OMP_WAIT_POLICY=passive
common=(--limit "$limit" --eval-limit "$eval_limit" --epochs 1000 --time "$seconds" --threads 1)
"$mnemo" train --model ner "${common[@]}" > "$out/random.txt" &
"$mnemo" train --model ner "${common[@]}" --vectors "$vectors" > "$out/vectors.txt" &
wait
for run in random vectors; do
  awk -v run="$run" '/^vectors / { print "  " $0 } /^epoch / { n++; last = $0 } /^test: .*entity level/ { t = 1 }
    t && /micro avg/ { printf "%-8s %d epochs (last: %s)\n         test entity micro F1 %s\n", run, n, last, $5; t = 0 }' "$out/$run.txt"
done
