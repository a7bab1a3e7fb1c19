#!/usr/bin/env bash
# mnemo against PyTorch on the workloads of ../shared/bench/WORKLOADS.md, in
# one run on this machine: `mnemo bench --json`, torch_ref.py (python3-torch,
# the same threads, OpenBLAS-OpenMP as its BLAS) and an sgemm probe; prints
# one table. Usage: scripts/bench-compare.sh [THREADS] [WORKLOADS] [BUDGET]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
only=${2:-mlp,rnn,lstm,lstm_2layer,gru,bilstm_tagger,vae,transformer}
budget=${3:-4}
ref=${MNEMO_TORCH_REF:-../shared/bench/torch_ref.py}
MNEMO_EXTRA_PKGS="python3-torch" scripts/setup.sh
scripts/build.sh
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
build/mnemo bench --sgemm --json --threads "$threads" --budget 2 --workload none 2>/dev/null | head -1 > "$out/sgemm.jsonl" || true
# Workload by workload, mnemo then PyTorch, so that a slow phase of the
# machine (minutes long on the project's VMs) hits both sides of a ratio.
for w in ${only//,/ }; do
  build/mnemo bench --json --threads "$threads" --budget "$budget" --workload "$w" >> "$out/mnemo.jsonl"
  wref=$ref
  case $w in seq2seq) wref=scripts/torch_workloads.py ;; esac   # workloads torch_ref.py lacks (issue 22)
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp \
    /usr/bin/python3 "$wref" --only "$w" --threads "$threads" --budget "$budget" --jsonl "$out/torch_$w.jsonl" >> "$out/torch.txt" 2>&1
  cat "$out/torch_$w.jsonl" >> "$out/torch.jsonl"
done
python3 - "$out" "$threads" <<'PY'
import json, math, sys
d, threads = sys.argv[1], sys.argv[2]
load = lambda f: {r["workload"]: r for r in map(json.loads, open(f"{d}/{f}")) if "workload" in r}
m, t = load("mnemo.jsonl"), load("torch.jsonl")
sg = [json.loads(l) for l in open(f"{d}/sgemm.jsonl") if l.strip()]
peak = max(sg[0]["sgemm_gflops_512"], sg[0]["sgemm_gflops_1024"]) if sg else float("nan")
first = next(iter(m.values()), {})
print(f"{first.get('cpu', '?')} ({first.get('cpu_ext', '?')}; OpenBLAS core {first.get('blas_core', '?')}); load average {' '.join(open('/proc/loadavg').read().split()[:3])}")
print(f"threads {threads}; OpenBLAS sgemm {peak:.1f} GFLOP/s (best of n=512, 1024)\n")
print("| workload | mnemo ms | PyTorch ms | mnemo / PyTorch | mnemo GFLOP/s | share of sgemm | arena MiB | PyTorch peak RSS MiB |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
ratios = []
for w, r in m.items():
    tr = t.get(w)
    ratio = r["train_ms_median"] / tr["train_ms_median"] if tr else float("nan")
    if tr: ratios.append(ratio)
    print(f"| {w} | {r['train_ms_median']:.2f} | {tr['train_ms_median'] if tr else float('nan'):.2f} | {ratio:.2f} | "
          f"{r['gflops']:.1f} | {100 * r['gflops'] / peak:.0f}% | {r['arena_bytes'] / 2**20:.1f} | "
          f"{(tr['peak_rss_bytes'] / 2**20) if tr else float('nan'):.0f} |")
if ratios:
    print(f"\ngeometric mean of mnemo / PyTorch: {math.exp(sum(map(math.log, ratios)) / len(ratios)):.2f}")
PY
