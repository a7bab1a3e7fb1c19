#!/usr/bin/env bash
# Batch-1 beam-search latency of a translation checkpoint (issue 22): mnemo
# (`mnemo eval --batch 1 --beam K`: key/value cache, tools/translate.c)
# against PyTorch eager under torch.no_grad() on the same weights
# (scripts/mt_latency.py: nn.Transformer recomputing the prefix, and a
# hand-written cached decoder), on the first N test verses, THREADS threads
# (default 2), ROUNDS rounds one after the other (mnemo, then PyTorch).
# mnemo's time includes compiling its decoding graphs (one set per source
# length bucket). Sentences per second; on a loaded machine read the ratio
# of one round, not the figures.
# Usage: scripts/mt-latency.sh CKPT [N (20)] [ROUNDS (2)] [BEAM (4)]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build}
[ -x "$build/mnemo" ] || "$root/scripts/build.sh" > /dev/null   # a clean clone
ckpt=${1:?usage: scripts/mt-latency.sh CKPT [N] [ROUNDS] [BEAM]}
n=${2:-20}
rounds=${3:-2}
beam=${4:-4}
threads=${THREADS:-2}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, $threads threads, beam $beam, batch 1, $n test verses; load $(cut -d' ' -f1-3 /proc/loadavg)"
# the test split's ids, for PyTorch: the BPE is deterministic, so a 1-step run with the checkpoint's
# --vocab learns the same one (checked below)
meta() { /usr/bin/python3 -c 'import json, struct, sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]; m = json.loads(b[8:8 + n])["__metadata__"]
print(json.loads(m["mnemo.translate"])["vocab"] if sys.argv[2] == "vocab" else m["mnemo.bpe"])' "$1" "$2"; }
"$build/mnemo" train --model translate --vocab "$(meta "$ckpt" vocab)" --steps 1 --val-every 1000000 --val-bleu 0 --threads 1 \
  --out "$out/x.st" --force --export-ids "$out/ids.tsv" > /dev/null
[ "$(meta "$ckpt" bpe)" = "$(meta "$out/x.st" bpe)" ] || { echo "mt-latency.sh: $ckpt was trained on another BPE (--src/--tgt?)" >&2; exit 1; }
for r in $(seq 1 "$rounds"); do
  /usr/bin/time -o "$out/time" -f "%e %U %S" "$build/mnemo" eval --ckpt "$ckpt" --beam "$beam" --batch 1 --threads "$threads" \
    --limit "$n" --samples 0 > "$out/eval.txt"
  m=$(grep '^test:' "$out/eval.txt")
  read -r wall user sys < "$out/time"
  echo "round $r mnemo (cache) beam $beam: $(sed -E 's/.*, ([0-9.]+) sentences\/s.*/\1/' <<<"$m") sentences/s," \
       "$(awk -v u="$user" -v s="$sys" -v n="$n" 'BEGIN { printf "%.2f CPU s per sentence (whole process: load, compile, decode)", (u + s) / n }')  [$m]"
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 "$root/scripts/mt_latency.py" "$out/ids.tsv" "$ckpt" \
    --limit "$n" --beam "$beam" --threads "$threads" | sed "s/^/round $r /"
done
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
