#!/usr/bin/env bash
# The figures of docs/distributed.md, in one run on this machine:
#  1. throughput (tokens/s over the global batch) of `mnemo train` for the
#     lstm and transformer models: 1 rank x 1 thread, 1 rank x 2 threads,
#     2 ranks x 1 thread (progress from the executor, default 25 MB buckets
#     and 0.25 MB buckets, and a communication thread), and PyTorch with
#     DistributedDataParallel (gloo, 2 processes x 1 thread);
#  2. allreduce time against bytes, shared memory and TCP on the loopback;
#  3. the ring-allreduce model fitted to 2 and its projection (dist_model.py).
# JSON lines go to $OUT (default dist-bench.jsonl), tables to stdout.
# Usage: scripts/dist-bench.sh [STEPS]   (build first: scripts/build.sh)
#   BIND=none|core: mpirun's --bind-to for the 2-rank runs (default none);
#   OMPI_MCA_mpi_yield_when_idle (default 1 here) passes through.
#        scripts/dist-bench.sh --policy ROUNDS STEPS [MODELS]
#   configurations side by side: ROUNDS rounds, each running every
#   configuration once in turn (interleaved, so a change of the machine's
#   load hits them alike); per configuration the median tokens/s, its ratio
#   to 1 rank x 1 thread of the same round (median, min, max, every round)
#   and each rank's CPU ms per step. POLICY picks the set:
#     launch (default): 1 x 1 (also under mpirun -np 1 for its CPU per
#       step), 1 x 2 threads, 2 x 1 with --bind-to none or core and
#       OMPI_MCA_mpi_yield_when_idle 1 or 0, default buckets;
#     buckets: the bucket policies (one 25 MB, first 1 MB / 0.25 MB, all
#       0.25 MB) with --bind-to $DIST_BIND (default none) and 1 x 2 passive.
#   Steps 3..STEPS count (start-up and compile excluded); 60-100 steps make
#   a run of 3-6 s, so `--policy 4 100` takes about 5 minutes.
#   MNEMO_BIN: another mnemo binary (a copy, so rebuilding does not disturb it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
policy=0
if [ "${1:-}" = --policy ]; then policy=1; rounds=${2:-3}; shift 2; fi
steps=${1:-30}
out=${OUT:-$root/dist-bench.jsonl}
mnemo=${MNEMO_BIN:-$root/${MNEMO_BUILD:-build}/mnemo}
bench=$root/${MNEMO_BUILD:-build}/dist_allreduce
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# OMP_WAIT_POLICY stays unset: mnemo then runs with its own GOMP_SPINCOUNT=5000
# (tools/mnemo.c), as a user's run does; OMP_WAIT_POLICY=passive would put
# the second thread to sleep after every parallel region and make 1 rank x 2
# threads pay a wake-up per region (the LSTM has ~990 steps per training step)
unset OMP_WAIT_POLICY GOMP_SPINCOUNT
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
# A rank waiting in MPI yields its core (a shared or oversubscribed machine; 0 on a dedicated one)
export OMPI_MCA_mpi_yield_when_idle=${OMPI_MCA_mpi_yield_when_idle:-1}
tmp=$(mktemp -d /tmp/mnemo-dist-bench-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
: > "$out"
echo "{\"cpu\": \"$(lscpu | sed -n 's/^Model name: *//p' | head -1)\", \"cpus\": $(nproc), \"load\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"steps\": $steps}" >> "$out"

# tokens/s from the metrics of a run: steps 3..last (the first ones warm up)
rate() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if '"val_loss"' not in l]
tokens = int(sys.argv[2]) * int(sys.argv[3])
a, b = lines[2], lines[-1]
print(round(tokens * (b["step"] - a["step"]) / (b["time"] - a["time"]), 1))
PY
}

# run MODEL RANKS THREADS LABEL [env...]: one mnemo run, one JSON line.
# RANKS 1: a plain process; 1m: one rank under mpirun (for its CPU line);
# 2 or more: mpirun --bind-to $BIND (default none).
run() {
  local model=$1 ranks=$2 threads=$3 label=$4; shift 4
  local batch=32; [ "$model" = transformer ] && batch=16
  local args=(train --model "$model" --steps "$steps" --val-every 100000 --val-batches 1 --threads "$threads" --force --out "$tmp/$model.st")
  if [ "$ranks" = 1 ]; then env "$@" OMP_NUM_THREADS="$threads" "$mnemo" "${args[@]}" > "$tmp/log" 2>&1
  else env "$@" OMP_NUM_THREADS="$threads" mpirun -np "${ranks%m}" --bind-to "${BIND:-none}" "$mnemo" "${args[@]}" > "$tmp/log" 2>&1; fi
  local r; r=$(rate "$tmp/$model.st.metrics.jsonl" "$batch" 64)
  local stats; stats=$(grep -a '^data parallel: [0-9]* steps' "$tmp/log" | sed 's/^data parallel: //' || true)
  local cpu; cpu=$(grep -a '^data parallel: CPU per step' "$tmp/log" | grep -o 'rank [0-9]* [0-9.]* ms ([0-9.]*' | awk '{printf "%s[%s, %s]", n++ ? ", " : "", $3, substr($5, 2)}' || true)
  echo "{\"system\": \"mnemo\", \"model\": \"$model\", \"ranks\": ${ranks%m}, \"threads\": $threads, \"variant\": \"$label\", \"global_batch\": $batch, \"tokens_per_s\": $r, \"round\": ${round:-0}, \"load\": \"$(cut -d' ' -f1 /proc/loadavg)\", \"cpu_ms_per_step\": [$cpu], \"dist\": \"$stats\"}" | tee -a "$out"
}

policy_buckets() {
  local model=$1 BIND=${DIST_BIND:-none}
  run $model 1 1 "1x1"
  run $model 1 2 "1x2 threads"
  run $model 1 2 "1x2 threads, OMP_WAIT_POLICY=passive" OMP_WAIT_POLICY=passive
  run $model 2 1 "2x1 one 25 MB bucket" MNEMO_DIST_FIRST_BUCKET_MB=25 MNEMO_DIST_BUCKET_MB=25
  run $model 2 1 "2x1 first 1 MB, then 25 MB" MNEMO_DIST_FIRST_BUCKET_MB=1 MNEMO_DIST_BUCKET_MB=25
  run $model 2 1 "2x1 first 0.25 MB, then 25 MB" MNEMO_DIST_FIRST_BUCKET_MB=0.25 MNEMO_DIST_BUCKET_MB=25
  run $model 2 1 "2x1 0.25 MB buckets" MNEMO_DIST_FIRST_BUCKET_MB=0.25 MNEMO_DIST_BUCKET_MB=0.25
}

# where the ranks run and how they wait: --bind-to none|core, yield_when_idle 1|0
policy_launch() {
  local model=$1
  run $model 1 1 "1x1"
  run $model 1m 1 "1x1 under mpirun -np 1"
  run $model 1 2 "1x2 threads"
  BIND=none run $model 2 1 "2x1 bind none, yield 1" OMPI_MCA_mpi_yield_when_idle=1
  BIND=core run $model 2 1 "2x1 bind core, yield 1" OMPI_MCA_mpi_yield_when_idle=1
  BIND=core run $model 2 1 "2x1 bind core, yield 0" OMPI_MCA_mpi_yield_when_idle=0
  BIND=none run $model 2 1 "2x1 bind none, yield 0" OMPI_MCA_mpi_yield_when_idle=0
}

if [ "$policy" = 1 ]; then
  set_of=policy_${POLICY:-launch}
  declare -F "$set_of" > /dev/null || { echo "POLICY=${POLICY}: give launch or buckets" >&2; exit 2; }
  for round in $(seq 1 "$rounds"); do
    for model in ${2:-lstm transformer}; do "$set_of" $model; done
  done
  python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"tokens_per_s"' in l]
base = {(r["model"], r["round"]): r["tokens_per_s"] for r in rows if r["variant"] == "1x1"}
print("| model | configuration | median tokens/s | median vs 1x1 of its round | min | max | ratios per round | CPU ms/step per rank (in allreduces), median | load |")
print("|---|---|---:|---:|---:|---:|---|---|---|")
seen = []
for r in rows:
    if (r["model"], r["variant"]) not in seen: seen.append((r["model"], r["variant"]))
for m, v in seen:
    rs = [r for r in rows if r["model"] == m and r["variant"] == v]
    ratios = [r["tokens_per_s"] / base[(m, r["round"])] for r in rs]
    cpus = [r.get("cpu_ms_per_step") or [] for r in rs]
    ranks = max((len(c) for c in cpus), default=0)
    cpu = ", ".join(f"{statistics.median(c[k][0] for c in cpus if len(c) > k):.1f} ({statistics.median(c[k][1] for c in cpus if len(c) > k):.1f})"
                    for k in range(ranks))
    print(f"| {m} | {v} | {statistics.median(r['tokens_per_s'] for r in rs):.0f} | {statistics.median(ratios):.2f}x | {min(ratios):.2f} | "
          f"{max(ratios):.2f} | " + " ".join(f"{x:.2f}" for x in ratios) + f" | {cpu} | " + " ".join(r["load"] for r in rs) + " |")
PY
  exit 0
fi

for model in lstm transformer; do
  run $model 1 1 "1 rank x 1 thread"
  run $model 1 2 "1 rank x 2 threads"
  run $model 2 1 "2 ranks x 1 thread, levels, 25 MB buckets"
  run $model 2 1 "2 ranks x 1 thread, levels, 0.25 MB buckets" MNEMO_DIST_BUCKET_MB=0.25
  run $model 2 1 "2 ranks x 1 thread, comm thread, 0.25 MB buckets" MNEMO_DIST_BUCKET_MB=0.25 MNEMO_DIST_PROGRESS=thread
  # PyTorch: the same sizes (vocabulary 63: the Bible text's symbols in mnemo)
  if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    OMP_NUM_THREADS=1 /usr/bin/python3 scripts/dist_torch.py $model 1 1 "$steps" 63 | tee -a "$out"
    OMP_NUM_THREADS=1 /usr/bin/python3 scripts/dist_torch.py $model 2 1 "$steps" 63 | tee -a "$out"
  fi
done

# allreduce against bytes: shared memory (vader) and TCP on the loopback
for btl in "self,vader" "self,tcp"; do
  mpirun -np 2 --bind-to none --mca btl "$btl" "$bench" $((64 << 20)) | sed "s/^{/{\"btl\": \"$btl\", /" | tee -a "$out"
done
python3 scripts/dist_model.py "$out"
