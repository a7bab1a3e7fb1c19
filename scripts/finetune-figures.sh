#!/usr/bin/env bash
# The fine-tuning figures of docs/finetuning.md: a character LSTM
# pre-trained on the King James Bible for $PRE seconds, then trained on the
# fortunes corpus (fortunes-min: fortunes, literature, riddles) for $FT
# seconds each (1) from scratch, (2) from the KJV model with its embedding
# frozen, (3) from the KJV model with everything trained and the recurrent
# weights at a smaller learning rate. The fortunes text is first written
# with the KJV's characters only (others become spaces), so the three runs
# read the same bytes and their bits per character compare. Prints a
# markdown table: validation bits per character at equal wall-clock.
#   scripts/finetune-figures.sh [BUILD_DIR]     (PRE=300 FT=120 THREADS=1 by default)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mnemo=$(readlink -f "${1:-$root/build}")/mnemo
PRE=${PRE:-300} FT=${FT:-120} THREADS=${THREADS:-1}
work=${WORK:-$(mktemp -d /tmp/mnemo-finetune-XXXXXX)}
cd "$work"
echo "work folder $work; pre-training ${PRE}s, fine-tuning ${FT}s, $THREADS thread(s)" >&2
size=(--hidden 256 --embed 64 --batch 32 --seq 64 --threads "$THREADS" --val-every 50 --val-batches 16 --force)

[ -f kjv.st ] || "$mnemo" train "${size[@]}" --time "$PRE" --epochs 100 --out kjv.st > kjv.log

/usr/bin/python3 - kjv.st /usr/share/games/fortunes/{fortunes,literature,riddles} <<'PY'
import json, struct, sys
b = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
vocab = set(json.loads(json.loads(b[8:8 + n])['__metadata__']['mnemo.vocab']))
out = bytearray()
for path in sys.argv[2:]:
    for line in open(path, 'rb').read().split(b'\n'):
        out += (b'' if line.strip() == b'%' else line) + b'\n'
text = bytes(c if c in vocab else 32 for c in out)
open('fortunes.txt', 'wb').write(text)
print(f"fortunes.txt: {len(text)} bytes, {sum(c not in vocab for c in out)} outside the KJV's characters", file=sys.stderr)
PY

run() {  # NAME FLAGS...
  local name=$1; shift
  "$mnemo" train --data fortunes.txt "${size[@]}" --time "$FT" --epochs 1000 --out "$name.st" "$@" > "$name.log"
}
run scratch
run frozen --init-from kjv.st --freeze 'emb.*'
run groups --init-from kjv.st --lr-groups 'rnn.*=0.001'

/usr/bin/python3 - "$FT" scratch frozen groups <<'PY'
import json, math, sys
ft = float(sys.argv[1])
marks = [ft / 4, ft / 2, 3 * ft / 4, ft]
print("| run | steps | " + " | ".join(f"bpc at {m:.0f} s" for m in marks) + " | best bpc |")
print("|---|---:|" + "---:|" * (len(marks) + 1))
for name in sys.argv[2:]:
    rows = [json.loads(l) for l in open(f"{name}.st.metrics.jsonl")]
    vals = [r for r in rows if r.get("val_loss") is not None]
    steps = max(r["step"] for r in rows)
    def at(t):  # the last validation at or before t seconds
        v = [r["val_loss"] for r in vals if r["time"] <= t + 0.5]
        return f"{v[-1] / math.log(2):.3f}" if v else "-"
    best = min(r["val_loss"] for r in vals) / math.log(2)
    print(f"| {name} | {steps} | " + " | ".join(at(m) for m in marks) + f" | {best:.3f} |")
PY
grep -h "best validation:" kjv.log | sed 's/^/KJV pre-training: /' >&2
