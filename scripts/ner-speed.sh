#!/usr/bin/env bash
# Training speed of `mnemo train --model ner` against the PyTorch BiLSTM-CRF
# of scripts/ner-torch-bench.py (same sizes, data, batches, buckets, CRF
# forward algorithm batched), as interleaved A/B rounds: each round runs
# one, then the other, alone (odd rounds mnemo first, even rounds PyTorch
# first), and prints both epoch lines and the ratio of epoch EPOCHS (the
# first compiles mnemo's graphs; mnemo's epoch time leaves out its dev
# evaluation). Rates are LIMIT / the epoch's seconds. The CPU, OpenBLAS's
# core type and the load before each run are printed; the last line is
#   mnemo/PyTorch median R (geometric mean G) over N rounds
# Usage: scripts/ner-speed.sh [LIMIT] [EPOCHS] [THREADS] [ROUNDS] [MNEMO]
set -euo pipefail
cd "$(dirname "$0")/.."
limit=${1:-1000} epochs=${2:-2} threads=${3:-1} rounds=${4:-3} mnemo=${5:-build/mnemo}
export OMP_WAIT_POLICY=passive
tmp=$(mktemp -d /tmp/ner-speed-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; load $(cut -d' ' -f1-3 /proc/loadavg)"
run_mnemo() { "$mnemo" train --model ner --limit "$limit" --eval-limit 100 --epochs "$epochs" --threads "$threads" > "$tmp/m.txt"; }
run_torch() { /usr/bin/python3 scripts/ner-torch-bench.py --limit "$limit" --epochs "$epochs" --threads "$threads" > "$tmp/t.txt"; }
# sentences per second of epoch EPOCHS: LIMIT over its seconds
rate() { awk -v e="$epochs" -v n="$limit" '$1 == "epoch" && $2 == e ":" { for (i = 1; i < NF; i++) if ($(i + 1) == "s") print n / $i }' "$1"; }
ratios=()
for r in $(seq "$rounds"); do
  order="mnemo torch"
  [ $((r % 2)) -eq 0 ] && order="torch mnemo"
  for who in $order; do
    echo "round $r: $who (load $(cut -d' ' -f1 /proc/loadavg))"
    "run_$who"
  done
  grep '^epoch' "$tmp/m.txt" | sed 's/^/  mnemo   /'
  grep -E '^(torch|epoch)' "$tmp/t.txt" | sed 's/^/  pytorch /'
  m=$(rate "$tmp/m.txt") t=$(rate "$tmp/t.txt")
  q=$(awk -v m="$m" -v t="$t" 'BEGIN { printf "%.3f", m / t }')
  ratios+=("$q")
  printf "round %d, epoch %d: mnemo %.1f, PyTorch %.1f sentences/s: mnemo/PyTorch %s\n" "$r" "$epochs" "$m" "$t" "$q"
done
printf '%s\n' "${ratios[@]}" | sort -g | awk '{ v[NR] = $1; l += log($1) }
  END { med = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "mnemo/PyTorch median %.2f (geometric mean %.2f) over %d rounds\n", med, exp(l / NR), NR }'
