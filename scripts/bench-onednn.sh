#!/usr/bin/env bash
# mnemo against oneDNN's RNN primitives (issue 24) on the recurrent
# workloads: builds and gradient-checks bench/onednn/onednn_ref.c
# (scripts/build-onednn-ref.sh), then runs `mnemo bench --json` and
# build/onednn_ref workload by workload, alternating, for each thread count
# and round, so that a slow phase of the machine hits both sides of a ratio.
# Prints per thread count the median over rounds of each side's median step
# and mnemo / oneDNN, with the CPU named; and the same ratio of CPU time per
# step (median x cpu_per_wall of each run), which a loaded machine disturbs
# less (on 2 threads it counts OpenMP's spinning waits too).
# Usage: scripts/bench-onednn.sh [ROUNDS] [WORKLOADS] [BUDGET] [THREADS]
#   defaults: 3 rounds, lstm,gru,lstm_2layer, 3 s per run, threads 1,2
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
only=${2:-lstm,gru,lstm_2layer}
budget=${3:-3}
threads=${4:-1,2}
scripts/build.sh >/dev/null
scripts/build-onednn-ref.sh
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq "$rounds"); do
  for t in ${threads//,/ }; do
    for w in ${only//,/ }; do
      build/mnemo bench --json --threads "$t" --budget "$budget" --workload "$w" >> "$out/mnemo.jsonl"
      build/onednn_ref --workload "$w" --threads "$t" --budget "$budget" >> "$out/onednn.jsonl"
    done
  done
done
python3 - "$out" "$rounds" <<'PY'
import json, math, statistics, sys
d, rounds = sys.argv[1], sys.argv[2]
def load(f):
    runs = {}
    for line in open(f"{d}/{f}"):
        r = json.loads(line)
        if "workload" in r:
            runs.setdefault((r["threads"], r["workload"]), []).append(r)
    return runs
m, o = load("mnemo.jsonl"), load("onednn.jsonl")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
flags = next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags")), [])
ext = " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16") if f in flags)
ver = next(iter(o.values()))[0]["onednn"] if o else "?"
print(f"{cpu} ({ext}); oneDNN {ver}; {rounds} alternating rounds, median of the rounds' medians")
print(f"load average at the end: {' '.join(open('/proc/loadavg').read().split()[0:3])}\n")
print("| threads | workload | mnemo ms | oneDNN step ms | oneDNN RNN fwd+bwd ms | mnemo / oneDNN | CPU-time ratio |")
print("|---:|---|---:|---:|---:|---:|---:|")
def cpu(rs):   # median step x the run's CPU/wall: the step's CPU time (all threads, spinning included)
    v = [r["train_ms_median"] * r["cpu_per_wall"] for r in rs if "cpu_per_wall" in r]
    return statistics.median(v) if v else math.nan
for (t, w) in sorted(m):
    a = statistics.median(r["train_ms_median"] for r in m[(t, w)])
    rs = o.get((t, w), [])
    b = statistics.median(r["train_ms_median"] for r in rs) if rs else math.nan
    c = statistics.median(r["rnn_ms_median"] for r in rs) if rs else math.nan
    print(f"| {t} | {w} | {a:.2f} | {b:.2f} | {c:.2f} | {a / b:.2f} | {cpu(m[(t, w)]) / cpu(rs):.2f} |")
PY
