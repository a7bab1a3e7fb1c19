#!/usr/bin/env bash
# 2 threads over 1 thread for each workload, measured in alternating rounds
# so that a noisy neighbour hits both sides alike: prints each round's
# speed-up (1-thread median / 2-thread median) and the median of the rounds.
# Usage: scripts/bench-scaling.sh [WORKLOADS] [ROUNDS] [BUDGET]
set -euo pipefail
cd "$(dirname "$0")/.."
only=${1:-mlp,lstm,transformer}
rounds=${2:-5}
budget=${3:-2}
scripts/build.sh
for w in ${only//,/ }; do
  ratios=()
  for r in $(seq "$rounds"); do
    t1=$(build/mnemo bench --json --threads 1 --budget "$budget" --workload "$w" | python3 -c 'import json,sys; print(json.load(sys.stdin)["train_ms_median"])')
    t2=$(build/mnemo bench --json --threads 2 --budget "$budget" --workload "$w" | python3 -c 'import json,sys; print(json.load(sys.stdin)["train_ms_median"])')
    ratios+=("$(python3 -c "print(f'{$t1 / $t2:.2f}')")")
    echo "$w round $r: 1 thread $t1 ms, 2 threads $t2 ms, speed-up ${ratios[-1]}"
  done
  python3 -c "import statistics,sys; print(f'$w: median speed-up over $rounds rounds {statistics.median(map(float, sys.argv[1:])):.2f}')" "${ratios[@]}"
done
