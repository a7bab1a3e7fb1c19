#!/usr/bin/env bash
# mnemo against PyTorch on the workloads of ../shared/bench/WORKLOADS.md, in
# one run on this machine: `mnemo bench --json`, torch_ref.py (python3-torch,
# the same threads, OpenBLAS-OpenMP as its BLAS) and an sgemm probe; prints
# one table. Workloads torch_ref.py lacks (lstm_long, ner, seq2seq, ...) run through
# scripts/torch_workloads.py, interleaved with the others alike.
# Usage: scripts/bench-compare.sh [THREADS] [WORKLOADS] [BUDGET]
# MNEMO_TORCH_MAX_WAIT=S: torch_ref.py waits at most S seconds for a quiet
# machine and does not rerun a disturbed workload (for runs under load).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
only=${2:-mlp,rnn,lstm,lstm_2layer,gru,bilstm_tagger,vae,transformer,lstm_long,ner,seq2seq}
budget=${3:-4}
ref=${MNEMO_TORCH_REF:-../shared/bench/torch_ref.py}
export MNEMO_TORCH_REF=$ref                    # torch_workloads.py imports it
wait=()
if [ -n "${MNEMO_TORCH_MAX_WAIT:-}" ]; then wait=(--max-wait "$MNEMO_TORCH_MAX_WAIT" --retries 0); fi
MNEMO_EXTRA_PKGS="python3-torch" scripts/setup.sh
scripts/build.sh
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
build/mnemo bench --sgemm --json --threads "$threads" --budget 2 --workload none 2>/dev/null | head -1 > "$out/sgemm.jsonl" || true
# Workload by workload, mnemo then PyTorch, so that a slow phase of the
# machine (minutes long on the project's VMs) hits both sides of a ratio.
for w in ${only//,/ }; do
  build/mnemo bench --json --threads "$threads" --budget "$budget" --workload "$w" >> "$out/mnemo.jsonl"
  case " mlp rnn lstm lstm_2layer gru bilstm_tagger vae transformer lstm_cells " in
    *" $w "*) py=("$ref" "${wait[@]}") ;;
    *) py=(scripts/torch_workloads.py) ;;
  esac
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp \
    /usr/bin/python3 "${py[@]}" --only "$w" --threads "$threads" --budget "$budget" --jsonl "$out/torch_$w.jsonl" >> "$out/torch.txt" 2>&1
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
ratios, base = [], []
for w, r in m.items():
    tr = t.get(w)
    ratio = r["train_ms_median"] / tr["train_ms_median"] if tr else float("nan")
    if tr: ratios.append(ratio)
    if tr and w in ("mlp", "rnn", "lstm", "lstm_2layer", "gru", "bilstm_tagger", "vae", "transformer"): base.append(ratio)
    print(f"| {w} | {r['train_ms_median']:.2f} | {tr['train_ms_median'] if tr else float('nan'):.2f} | {ratio:.2f} | "
          f"{r['gflops']:.1f} | {100 * r['gflops'] / peak:.0f}% | {r['arena_bytes'] / 2**20:.1f} | "
          f"{(tr['peak_rss_bytes'] / 2**20) if tr else float('nan'):.0f} |")
gm = lambda v: math.exp(sum(map(math.log, v)) / len(v))
if ratios:
    print(f"\ngeometric mean of mnemo / PyTorch: {gm(ratios):.2f} over {len(ratios)} workloads", end="")
    print(f" ({gm(base):.2f} over the {len(base)} of WORKLOADS.md)" if base and len(base) < len(ratios) else "")
PY
