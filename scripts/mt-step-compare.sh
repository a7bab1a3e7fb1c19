#!/usr/bin/env bash
# Training speed of the default translation Transformer, mnemo against
# PyTorch (scripts/mt_torch.py: the same model, BPE ids, batch rule,
# optimizer), as CPU time inside training steps (so a loaded machine
# matters less than for wall-clock time): ROUNDS rounds, each running
# `mnemo train --model translate --steps STEPS` then `mt_torch.py --steps
# STEPS`, one after the other, THREADS threads each (default 1). Each side
# prints a "training:" line (steps, tokens, CPU seconds in steps, tokens per
# CPU-second; mnemo's includes compiling one graph per length bucket); the
# table gives both per round and the ratio mnemo / PyTorch of tokens per
# CPU-second (> 1: mnemo faster), then the geometric mean over rounds.
# Usage: scripts/mt-step-compare.sh [ROUNDS (3)] [STEPS (40)] [OUT_DIR] [-- extra train flags]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build}
[ -x "$build/mnemo" ] || "$root/scripts/build.sh" > /dev/null   # a clean clone
rounds=${1:-3}
steps=${2:-40}
out=${3:-/tmp/mnemo-mt-steps}
threads=${THREADS:-1}
shift $(( $# < 3 ? $# : 3 ))
[ "${1:-}" = "--" ] && shift
mkdir -p "$out"
mnemo=$build/mnemo
data=${MNEMO_DATA:-$HOME/.cache/mnemo}/parallel
[ -f "$data/kjv.imp" ] && [ -f "$data/rv1909.imp" ] || "$root/scripts/make-parallel.sh" "$data"
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, $threads thread(s) each; load $(cut -d' ' -f1-3 /proc/loadavg)"
"$mnemo" train --model translate --steps 1 --val-every 1 --val-bleu 0 --threads "$threads" --out "$out/bpe.st" --force \
  --export-ids "$out/ids.tsv" "$@" > "$out/bpe.log"
echo "| round | mnemo CPU ms/step | mnemo tok/CPU-s | PyTorch CPU ms/step | PyTorch tok/CPU-s | mnemo / PyTorch (tok per CPU-s) | load |"
echo "|---:|---:|---:|---:|---:|---:|---|"
ratios=()
for r in $(seq 1 "$rounds"); do
  "$mnemo" train --model translate --steps "$steps" --time 0 --val-every 1000000 --val-bleu 0 --threads "$threads" \
    --out "$out/m.st" --force "$@" > "$out/mnemo.$r.log"
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 "$root/scripts/mt_torch.py" \
    "$out/ids.tsv" "$out/bpe.st" /dev/null --steps "$steps" --time 1e9 --no-decode --threads "$threads" > "$out/torch.$r.log"
  m=$(grep '^training:' "$out/mnemo.$r.log")
  t=$(grep '^training:' "$out/torch.$r.log")
  mms=$(sed -E 's/.*\(([0-9.]+) CPU ms\/step, ([0-9]+) tok.*/\1/' <<<"$m"); mtok=$(sed -E 's/.*, ([0-9]+) tok per.*/\1/' <<<"$m")
  tms=$(sed -E 's/.*\(([0-9.]+) CPU ms\/step, ([0-9]+) tok.*/\1/' <<<"$t"); ttok=$(sed -E 's/.*, ([0-9]+) tok per.*/\1/' <<<"$t")
  ratio=$(awk -v a="$mtok" -v b="$ttok" 'BEGIN { printf "%.2f", a / b }')
  ratios+=("$ratio")
  echo "| $r | $mms | $mtok | $tms | $ttok | $ratio | $(cut -d' ' -f1 /proc/loadavg) |"
done
printf '%s\n' "${ratios[@]}" | awk '{ s += log($1); n++ } END { printf "geometric mean of mnemo / PyTorch tokens per CPU-second over %d rounds: %.2f\n", n, exp(s / n) }'
