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
# With --lm the pre-trained model is neural: a character LSTM language
# model (`mnemo train --model lstm`, embedding 25 = the tagger's --char-dim)
# trained for PRE seconds on the words of train.conll (one sentence a line,
# tags not read); the tagger's character embedding starts from the LM's
# (--init-from LM --init-map: rows by code point), against a random start,
# both for the same EPOCHS on the labels of the first LIMIT sentences, at
# once, one thread each. An existing $OUT/charlm.st is reused. Usage:
#   scripts/ner-pretrain.sh --lm [LIMIT] [EPOCHS] [EVAL_LIMIT] [PRE] [SEED] [MNEMO]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --lm ]; then
  shift
  limit=${1:-2000} epochs=${2:-4} eval_limit=${3:-0} pre=${4:-900} seed=${5:-1} mnemo=${6:-build/mnemo}
  data=${MNEMO_DATA:-$HOME/.cache/mnemo}/brown-ner
  out=${OUT:-build/ner-pretrain}
  mkdir -p "$out"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; load $(cut -d' ' -f1-3 /proc/loadavg)"
  export OMP_WAIT_POLICY=passive
  if [ ! -s "$out/charlm.st" ]; then
    awk 'NF == 0 { if (l != "") print l; l = ""; next } /^-DOCSTART-/ { next } { l = l (l == "" ? "" : " ") $1 } END { if (l != "") print l }' \
      "$data/train.conll" > "$out/brown-words.txt"
    "$mnemo" train --model lstm --data "$out/brown-words.txt" --embed 25 --time "$pre" --threads 1 --out "$out/charlm.st" --force > "$out/charlm.txt"
  fi
  printf 'emb.weight -> ner.chars.weight\n* -> -\n' > "$out/charlm.map"
  common=(--limit "$limit" --eval-limit "$eval_limit" --epochs "$epochs" --threads 1 --seed "$seed" --char-dim 25)
  "$mnemo" train --model ner "${common[@]}" > "$out/random-s$seed.txt" &
  "$mnemo" train --model ner "${common[@]}" --init-from "$out/charlm.st" --init-map "$out/charlm.map" > "$out/charlm-s$seed.txt" &
  wait
  for run in random charlm; do
    awk -v run="$run" '/<- emb.weight/ { print "  " $0 } /^epoch / { f = f " " $NF; if ($NF == "(best)") f = f; n++ }
      /^epoch / { d = d sprintf(" %s", $(NF - ($NF == "(best)"))) } /^test: .*entity level/ { t = 1 }
      t && /micro avg/ { printf "%-7s seed %s, %d epochs, dev F1 by epoch:%s\n        test entity micro F1 %s\n", run, seed, n, d, $5; t = 0 }' \
      seed="$seed" "$out/$run-s$seed.txt"
  done
  exit 0
fi
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
