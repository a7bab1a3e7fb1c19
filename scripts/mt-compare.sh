#!/usr/bin/env bash
# Trains the default translation Transformer (KJV -> Reina-Valera 1909) with
# mnemo and the same model in PyTorch (scripts/mt_torch.py: same BPE ids,
# batches, optimizer and schedule) AT THE SAME TIME, $THREADS thread(s) each,
# for SECONDS of wall-clock time, so both see the same machine load. Then
# each side translates the test split greedily and with beam 4 (again side
# by side), and every hypothesis file is scored by mnemo's BLEU/chrF
# (tests/test_mt_data --bleu, 13a as sacreBLEU) and cross-checked with
# NLTK's corpus_bleu on the same 13a tokens (smoothing method3, which is
# sacreBLEU's "exp" smoothing of orders without a match). Figures go to
# docs/translation.md by hand (with the load average printed at the end).
# Usage: scripts/mt-compare.sh [SECONDS (600)] [OUT_DIR (/tmp/mnemo-mt)] [-- extra train flags]
# TEST_LIMIT=N scores only the first N test pairs on both sides (PyTorch's
# nn.Transformer decodes without a cache: the whole split takes it hours).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build}
secs=${1:-600}
out=${2:-/tmp/mnemo-mt}
threads=${THREADS:-1}
limit=${TEST_LIMIT:-0}
shift $(( $# < 2 ? $# : 2 ))
[ "${1:-}" = "--" ] && shift
mkdir -p "$out"
mnemo=$build/mnemo
tool=$build/tests/test_mt_data
[ -x "$mnemo" ] && [ -x "$tool" ] || "$root/scripts/build.sh" > /dev/null   # a clean clone
data=${MNEMO_DATA:-$HOME/.cache/mnemo}/parallel
[ -f "$data/kjv.imp" ] && [ -f "$data/rv1909.imp" ] || "$root/scripts/make-parallel.sh" "$data"
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, $threads thread(s) each; load $(cut -d' ' -f1-3 /proc/loadavg)"

# The BPE and the encoded pairs, for PyTorch (the same as mnemo's run: the BPE is deterministic).
"$mnemo" train --model translate --steps 1 --val-every 1 --val-bleu 0 --threads "$threads" --out "$out/bpe.st" --force \
  --export-ids "$out/ids.tsv" "$@" > "$out/bpe.log"

echo "== mnemo and PyTorch: train for $secs s each, concurrently"
(
  "$mnemo" train --model translate --time "$secs" --val-every 1000000 --threads "$threads" --out "$out/mnemo.st" --force "$@" \
    > "$out/mnemo_train.log"
  for beam in 1 4; do
    "$mnemo" eval --ckpt "$out/mnemo.st" --beam $beam --threads "$threads" --limit "$limit" --samples 2 --hyp "$out/mnemo_hyp.beam$beam" \
      > "$out/mnemo_eval.beam$beam.log"
  done
) &
mpid=$!
LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 "$root/scripts/mt_torch.py" "$out/ids.tsv" "$out/bpe.st" "$out/torch_hyp.beam1" --time "$secs" \
  --threads "$threads" --beam 4 --test-limit "$limit" > "$out/torch_train.log"
wait $mpid
grep -E "^(translate|step [0-9]+:|best)" "$out/mnemo_train.log" | tail -3
grep -hE "^test:" "$out"/mnemo_eval.beam*.log
grep -E "^torch(:| greedy| beam)" "$out/torch_train.log"
mv -f "$out/torch_hyp.beam1.beam4" "$out/torch_hyp.beam4"
awk -F'\t' -v n="$limit" '$1 == "test" && (n == 0 || k++ < n) { print $4 }' "$out/ids.tsv" > "$out/ref.txt"
"$tool" --tok13a "$out/ref.txt" "$out/ref.tok"
for h in mnemo_hyp.beam1 mnemo_hyp.beam4 torch_hyp.beam1 torch_hyp.beam4; do
  "$tool" --tok13a "$out/$h" "$out/$h.tok"
  nltk=$(/usr/bin/python3 -c '
import sys
from nltk.translate.bleu_score import corpus_bleu, SmoothingFunction
h = [l.split() for l in open(sys.argv[1], encoding="utf-8")]
r = [[l.split()] for l in open(sys.argv[2], encoding="utf-8")]
# method3 is the exp smoothing of sacreBLEU for orders without a match (NIST)
print("%.9f" % (100 * corpus_bleu(r, h, smoothing_function=SmoothingFunction().method3)))' "$out/$h.tok" "$out/ref.tok" 2>/dev/null)
  echo "$h: $("$tool" --bleu "$out/$h" "$out/ref.txt"); NLTK corpus_bleu (method3) on 13a tokens $nltk"
  "$tool" --bleu "$out/$h" "$out/ref.txt" > "$out/$h.score"
done
# the rows of docs/translation.md's table
/usr/bin/python3 - "$out" "$secs" <<'PY'
import re, sys
out, secs = sys.argv[1], sys.argv[2]
rd = lambda f: open(f"{out}/{f}", encoding="utf-8").read()
def score(h):
    m = re.search(r"bleu13a ([0-9.]+) .*chrf ([0-9.]+)", rd(f"{h}.score"))
    return f"{float(m.group(1)):.2f} | {float(m.group(2)):.2f}"
def sps(log):
    m = re.search(r"([0-9.]+) sentences/s", log)
    return m.group(1) if m else "?"
mt, tt = rd("mnemo_train.log"), rd("torch_train.log")
ms = re.findall(r"^step ([0-9]+): .*, ([0-9]+) tok/s, [0-9]+ s$", mt, re.M)[-1]
mc = re.search(r"^training: .*, ([0-9]+) tok per CPU-second", mt, re.M).group(1)
ts = re.search(r"^torch: ([0-9]+) steps in [0-9]+ s, ([0-9]+) tok/s", tt, re.M)
tc = re.search(r"^training: .*, ([0-9]+) tok per CPU-second", tt, re.M).group(1)
tg = re.search(r"^torch greedy: .*", tt, re.M); tb = re.search(r"^torch beam 4: .*", tt, re.M)
print(f"\n| {secs} s of training | steps | training tokens/s | tokens per CPU-s | test BLEU greedy | chrF | BLEU beam 4 | chrF | greedy sentences/s | beam 4 sentences/s |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
print(f"| mnemo | {ms[0]} | {ms[1]} | {mc} | {score('mnemo_hyp.beam1')} | {score('mnemo_hyp.beam4')} | "
      f"{sps(rd('mnemo_eval.beam1.log'))} | {sps(rd('mnemo_eval.beam4.log'))} |")
print(f"| PyTorch (nn.Transformer) | {ts.group(1)} | {ts.group(2)} | {tc} | {score('torch_hyp.beam1')} | {score('torch_hyp.beam4')} | "
      f"{sps(tg.group(0)) if tg else '?'} | {sps(tb.group(0)) if tb else '?'} |")
print(f"\nmnemo / PyTorch training tokens/s: {int(ms[1]) / int(ts.group(2)):.2f}; per CPU-second: {int(mc) / int(tc):.2f}")
PY
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
