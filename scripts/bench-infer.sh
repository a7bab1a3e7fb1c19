#!/usr/bin/env bash
# Inference latency (issue 22): `mnemo bench --infer` against the same
# models in PyTorch eager mode under torch.no_grad() (scripts/infer_torch.py),
# batch 1, one token at a time, the same weights (mnemo saves them, PyTorch
# loads them and checks mnemo's probe logits first). Model by model, mnemo
# then PyTorch, for each thread count and round, so that a slow phase of the
# machine hits both sides of a ratio. Prints tokens per second and
# mnemo time / PyTorch time, with the CPU named.
# Usage: scripts/bench-infer.sh [ROUNDS] [THREADS] [BUDGET] [MODELS]
#   defaults: 3 rounds, threads 1,2, 2 s per run, lstm_lm,transformer_lm
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
threads=${2:-1,2}
budget=${3:-2}
only=${4:-lstm_lm,transformer_lm}
MNEMO_EXTRA_PKGS="python3-torch" scripts/setup.sh
scripts/build.sh
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq "$rounds"); do
  for t in ${threads//,/ }; do
    for m in ${only//,/ }; do
      build/mnemo bench --infer --json --threads "$t" --budget "$budget" --workload "$m" --save-weights "$out" > "$out/last.jsonl"
      cat "$out/last.jsonl" >> "$out/mnemo.jsonl"
      LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp \
        /usr/bin/python3 scripts/infer_torch.py --weights "$out" --mnemo-json "$out/last.jsonl" --only "$m" \
        --threads "$t" --budget "$budget" >> "$out/torch.jsonl"
    done
  done
done
python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
d, rounds = sys.argv[1], sys.argv[2]
def load(f):
    runs = {}
    for line in open(f"{d}/{f}"):
        r = json.loads(line)
        runs.setdefault((r["threads"], r["infer"]), []).append(r)
    return runs
m, t = load("mnemo.jsonl"), load("torch.jsonl")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
flags = next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags")), [])
ext = " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_vnni") if f in flags)
print(f"{cpu} ({ext}); batch 1, one token; {rounds} alternating rounds, median of the rounds' medians")
print(f"load average at the end: {' '.join(open('/proc/loadavg').read().split()[0:3])}\n")
print("| threads | model | context | mnemo ms/token | PyTorch ms/token | mnemo tokens/s | PyTorch tokens/s | mnemo / PyTorch | logits max diff |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
for (th, w) in sorted(m):
    a = statistics.median(r["token_ms_median"] for r in m[(th, w)])
    b = statistics.median(r["token_ms_median"] for r in t[(th, w)])
    diff = max(r["probe_max_abs_diff"] for r in t[(th, w)])
    print(f"| {th} | {w} | {m[(th, w)][0]['context']} | {a:.4f} | {b:.4f} | {1e3 / a:.0f} | {1e3 / b:.0f} | {a / b:.2f} | {diff:.1e} |")
print("\ncontext: positions a step sees (the LSTM: its state; the transformer: a key/value cache of that many slots, both sides)")
PY
