#!/usr/bin/env bash
# The transformer's training step as a share of the same run's sgemm
# throughput with AVX2 kernels and with AVX-512 kernels (issue 22), on one
# AVX-512 machine: the kernel family is chosen per process by the two
# libraries' own variables, OPENBLAS_CORETYPE (Haswell: AVX2; SkylakeX:
# AVX-512) and oneDNN's DNNL_MAX_CPU_ISA (AVX2, AVX512_CORE). ops/matmul.c's
# rule then picks OpenBLAS for every product under both settings (equal
# widths). Rounds alternate the settings and, within each, the sgemm probe
# (`mnemo bench --sgemm`: mnemo's matmul at n = 512 and 1024, the better) and
# the step, so that a slow phase of a shared machine hits both alike; the
# medians over rounds are printed: transformer GFLOP/s / sgemm GFLOP/s for
# each ISA and AVX2's share over AVX-512's (docs/performance.md, "AVX2
# against AVX-512").
# Usage: scripts/bench-isa.sh [THREADS] [ROUNDS] [BUDGET] [WORKLOAD]
# MNEMO_ISA_AVX2_BUILD=DIR: run the AVX2 side from DIR/mnemo instead (e.g. a
# build configured with -Dnative=false -Dc_args=-march=haswell, so that the
# element-wise kernels are AVX2 too); default build/ for both.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
rounds=${2:-3}
budget=${3:-3}
workload=${4:-transformer}
scripts/build.sh >/dev/null
avx2_bin=${MNEMO_ISA_AVX2_BUILD:-build}/mnemo
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run() {   # isa bin: one sgemm probe and one workload run, JSON lines appended to $out/ISA.jsonl
  local isa=$1 bin=$2 core dnnl
  if [ "$isa" = avx2 ]; then core=Haswell dnnl=AVX2; else core=SkylakeX dnnl=AVX512_CORE; fi
  OPENBLAS_CORETYPE=$core DNNL_MAX_CPU_ISA=$dnnl "$bin" bench --sgemm --json --threads "$threads" --budget 2 --workload none >> "$out/$isa.sgemm"
  OPENBLAS_CORETYPE=$core DNNL_MAX_CPU_ISA=$dnnl "$bin" bench --json --threads "$threads" --budget "$budget" --workload "$workload" >> "$out/$isa.step"
}
for r in $(seq "$rounds"); do
  if [ $((r % 2)) = 1 ]; then run avx2 "$avx2_bin"; run avx512 build/mnemo; else run avx512 build/mnemo; run avx2 "$avx2_bin"; fi
done
python3 - "$out" "$threads" "$workload" "$avx2_bin" <<'PY'
import json, statistics, sys
d, threads, workload, avx2_bin = sys.argv[1:]
rows = lambda f: [json.loads(l) for l in open(f"{d}/{f}") if l.strip()]
med = statistics.median
first = rows("avx512.step")[0]
print(f"{first['cpu']} ({first['cpu_ext']}); threads {threads}; {workload}; load average "
      f"{' '.join(open('/proc/loadavg').read().split()[:3])}; AVX2 side from {avx2_bin}")
print("\n| kernels | OpenBLAS core | gemm | sgemm GFLOP/s | step ms | step GFLOP/s | step / sgemm (median of rounds) |")
print("|---|---|---|---:|---:|---:|---:|")
frac = {}
for isa in ("avx2", "avx512"):
    sg, st = rows(f"{isa}.sgemm"), rows(f"{isa}.step")
    peak = [max(s["sgemm_gflops_512"], s["sgemm_gflops_1024"]) for s in sg]
    shares = [t["gflops"] / p for t, p in zip(st, peak)]       # round by round: the probe and the step ran together
    frac[isa] = med(shares)
    print(f"| {isa} | {st[0]['blas_core']} | {st[0]['gemm']} | {med(peak):.1f} | {med(t['train_ms_median'] for t in st):.2f} | "
          f"{med(t['gflops'] for t in st):.1f} | {100 * frac[isa]:.0f}% ({', '.join(f'{100 * s:.0f}' for s in shares)}) |")
print(f"\nAVX2 share of sgemm over AVX-512's: {frac['avx2'] / frac['avx512']:.2f} (target >= 0.75); "
      f"AVX2 share itself {100 * frac['avx2']:.0f}%")
PY
