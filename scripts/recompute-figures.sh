#!/usr/bin/env bash
# Training under a memory budget (issue 17): for each workload, the arena and
# the training-step time without a budget, then at budgets of 3/4, 1/2, 1/3
# and 1/4 of that arena (a budget no plan meets prints the smallest arena the
# recompute pass reaches). Usage: scripts/recompute-figures.sh [MNEMO] [THREADS] [SECONDS] [WORKLOADS]
set -uo pipefail
mnemo=${1:-build/mnemo}
threads=${2:-2}
secs=${3:-2}
only=${4:-lstm,transformer,rnn,bilstm_tagger}
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.readline())['$1'])"; }
printf "%-14s %-8s %12s %8s %10s %7s\n" workload budget arena_bytes ratio train_ms time
for w in ${only//,/ }; do
  base=$("$mnemo" bench --json --threads "$threads" --budget "$secs" --workload "$w" 2>/dev/null)
  arena=$(field arena_bytes <<<"$base")
  ms=$(field train_ms_median <<<"$base")
  printf "%-14s %-8s %12d %8.2f %10.1f %7.2f\n" "$w" none "$arena" 1 "$ms" 1
  for frac in 3/4 1/2 1/3 1/4; do
    b=$((arena * ${frac%/*} / ${frac#*/}))
    out=$("$mnemo" bench --json --threads "$threads" --budget "$secs" --workload "$w" --memory-budget "$b" 2>&1)
    if grep -q '^{' <<<"$out"; then
      a=$(grep '^{' <<<"$out" | field arena_bytes)
      t=$(grep '^{' <<<"$out" | field train_ms_median)
      printf "%-14s %-8s %12d %8.2f %10.1f %7.2f\n" "$w" "$frac" "$a" "$(python3 -c "print($a/$arena)")" "$t" "$(python3 -c "print($t/$ms)")"
    else
      printf "%-14s %-8s %s\n" "$w" "$frac" "$(grep -o 'the smallest arena.*bytes' <<<"$out" | head -1)"
    fi
  done
done
