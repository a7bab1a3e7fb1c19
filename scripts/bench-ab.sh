#!/usr/bin/env bash
# Two mnemo binaries on the same workloads, alternating workload by workload
# and round by round, so that a slow phase of the machine hits both sides of
# a ratio. For "did this change make anything slower": build the old tree
# somewhere, then
#   scripts/bench-ab.sh OLD_MNEMO NEW_MNEMO [THREADS] [ROUNDS] [WORKLOADS] [BUDGET]
# Prints per workload the median training-step time of each binary over the
# rounds and new / old (below 1: the new binary is faster).
set -euo pipefail
old=${1:?usage: bench-ab.sh OLD_MNEMO NEW_MNEMO [THREADS] [ROUNDS] [WORKLOADS] [BUDGET]}
new=${2:?usage: bench-ab.sh OLD_MNEMO NEW_MNEMO [THREADS] [ROUNDS] [WORKLOADS] [BUDGET]}
threads=${3:-2}
rounds=${4:-3}
only=${5:-mlp,rnn,lstm,lstm_2layer,gru,bilstm_tagger,vae,transformer}
budget=${6:-2}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq "$rounds"); do
  for w in ${only//,/ }; do
    "$old" bench --json --threads "$threads" --budget "$budget" --workload "$w" 2>/dev/null >> "$out/old.jsonl"
    "$new" bench --json --threads "$threads" --budget "$budget" --workload "$w" 2>/dev/null >> "$out/new.jsonl"
  done
done
python3 - "$out" "$threads" "$rounds" <<'PY'
import json, math, statistics, sys
d, threads, rounds = sys.argv[1], sys.argv[2], sys.argv[3]
def load(f):
    runs = {}
    for line in open(f"{d}/{f}"):
        r = json.loads(line)
        if "workload" in r:
            runs.setdefault(r["workload"], []).append(r["train_ms_median"])
    return runs
o, n = load("old.jsonl"), load("new.jsonl")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"{cpu}; threads {threads}; {rounds} alternating rounds; median of the rounds' medians\n")
print("| workload | old ms | new ms | new / old |")
print("|---|---:|---:|---:|")
ratios = []
for w in o:
    a, b = statistics.median(o[w]), statistics.median(n.get(w, [math.nan]))
    ratios.append(b / a)
    print(f"| {w} | {a:.2f} | {b:.2f} | {b / a:.3f} |")
print(f"\ngeometric mean new / old: {math.exp(sum(map(math.log, ratios)) / len(ratios)):.3f}")
PY
