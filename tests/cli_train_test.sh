#!/usr/bin/env bash
# mnemo train handed odd paths and stranger's checkpoints (issue 14): no
# shell ever sees a path; resuming with another --batch continues at the
# same example and another --seq or --limit is refused; the training state
# of a checkpoint is range-checked; nothing the run did not create is
# replaced, and no device, pipe or link ever; stale temporaries go and
# resumed metrics do not double back; the best checkpoint is named only if
# written; "nan" with the metrics' step; --threads capped at the CPUs.
set -u
. "$(dirname "$(readlink -f "$0")")/cli_lib.sh"
mnemo=$(readlink -f "$1")
tmp=$(mktemp -d /tmp/mnemo-cli-train-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
is_png() { [ "$(head -c 4 "$1" | tail -c 3)" = PNG ]; }
# steps of the train lines (no val_loss) of a metrics file, one a line
train_steps() { grep -v val_loss "$1" | sed -n 's/.*"step": \([0-9]*\),.*/\1/p'; }
# setmeta SRC DST KEY JSON [merge]: a copy of checkpoint SRC whose metadata
# KEY is JSON (or, with merge, KEY's JSON object updated with JSON's keys)
setmeta() {
  python3 - "$@" <<'PY'
import json, struct, sys
src, dst, key, value = sys.argv[1:5]
b = open(src, 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
if len(sys.argv) > 5:
    merged = json.loads(h['__metadata__'][key])
    merged.update(json.loads(value))
    value = json.dumps(merged)
h['__metadata__'][key] = value
j = json.dumps(h, separators=(',', ':')).encode()
j += b' ' * (-len(j) % 8)
open(dst, 'wb').write(struct.pack('<Q', len(j)) + j + b[8 + n:])
PY
}
setstate() { setmeta "$1" "$2" mnemo.train_state "$3"; }
# setnan SRC DST TENSOR: a copy of checkpoint SRC whose TENSOR holds a NaN
setnan() {
  python3 - "$@" <<'PY'
import json, struct, sys
src, dst, name = sys.argv[1:4]
b = bytearray(open(src, 'rb').read())
n = struct.unpack('<Q', b[:8])[0]
begin = json.loads(b[8:8 + n])[name]['data_offsets'][0]
b[8 + n + begin:8 + n + begin + 4] = struct.pack('<f', float('nan'))
open(dst, 'wb').write(bytes(b))
PY
}

text=/usr/share/games/fortunes/fortunes       # 1,430 windows of 16 characters
common=(--data "$text" --hidden 16 --embed 8 --batch 4 --seq 16 --val-every 5 --val-batches 2 --threads 1)

# 1. no shell: a quote in --out plots; a command in --out (or in a
#    checkpoint's stored out) never runs; the PNG is named only if written
evil="x'; touch PWNED; echo 'y"
if command -v gnuplot > /dev/null; then
  expect 0 "loss curves: bob's model.st.loss.png" -- "$mnemo" train "${common[@]}" --steps 5 --out "bob's model.st"
  check "no PNG for a quoted --out" is_png "bob's model.st.loss.png"
  expect 0 "loss curves: $evil.loss.png" -- "$mnemo" train "${common[@]}" --steps 5 --out "$evil"
  check "no PNG for a --out holding a command" is_png "$evil.loss.png"
else
  expect 0 "gnuplot not found" -- "$mnemo" train "${common[@]}" --steps 5 --out "$evil"
fi
expect 0 "resuming at step 5" -- "$mnemo" train --resume "$evil.last" --steps 10
check "a path in --out ran as a shell command" [ ! -e PWNED ]
mkfifo m.fifo; cat m.fifo > fifo.out &
expect 0 "no loss plot: metrics m.fifo: not a regular file" -- timeout 120 "$mnemo" train "${common[@]}" --steps 5 --out mf.st --metrics m.fifo
wait
check "metrics into a pipe" grep -q '"step": 5' fifo.out
mkdir bin && printf '#!/bin/sh\ncat > /dev/null\nexit 1\n' > bin/gnuplot && chmod +x bin/gnuplot
expect 0 "no loss plot: gnuplot failed" -- env PATH="$tmp/bin:$PATH" "$mnemo" train "${common[@]}" --steps 5 --out g.st
check "a failed plot was reported as written" eval '! grep -q "loss curves" out.txt'

# a checkpoint's stored out and metrics are not paths to write: a resumed
# run writes beside the checkpoint; a file that is not metrics is not cut
echo "keep me" > victim.jsonl
setmeta "$evil.last" v.st.last mnemo.config '{"out": "planted.st", "metrics": "victim.jsonl"}' merge
expect 0 "checkpoints v.st \(best\), v.st.last \(latest\); metrics v.st.metrics.jsonl" -- "$mnemo" train --resume v.st.last --steps 15
check "a checkpoint's stored out was written" [ ! -e planted.st ]
check "a checkpoint's stored metrics path was written" [ "$(cat victim.jsonl)" = "keep me" ]
printf 'my notes\nmore notes\n' > notes.txt
expect 1 "metrics notes.txt: line 1 is not a metrics line" -- "$mnemo" train --resume v.st.last --out notes.st --metrics notes.txt --steps 20
check "a file that is not metrics was rewritten" [ "$(cat notes.txt)" = "$(printf 'my notes\nmore notes')" ]

# 2. --batch may change on resume (the position counts examples: 20 x 72
#    overran the 1,430 items when it counted batches); --seq, --limit or
#    other data change the items and are refused
"$mnemo" train "${common[@]}" --steps 20 --out r.st > /dev/null
expect 0 "resuming at step 20 \(epoch 1, example 80 of 1430\)" -- "$mnemo" train --resume r.st.last --batch 72 --steps 22
expect 0 "resuming at step 22 \(epoch 1, example 224 of 1430\)" -- "$mnemo" train --resume r.st.last --batch 4 --steps 23
expect 1 "r.st.last was saved at example 228 of 1430 .*this run has 2860 items \(--batch 4, --seq 8" -- \
  "$mnemo" train --resume r.st.last --seq 8 --steps 30
expect 1 "this run has 296 items \(--batch 4, --seq 16, --limit 5000\)" -- "$mnemo" train --resume r.st.last --limit 5000 --steps 30

# 3. the training state is range-checked, naming checkpoint and field
st() { setstate r.st.last s.st "$1"; expect 1 "checkpoint s.st: training state: \"$2\"" -- "$mnemo" train --resume s.st --out s2.st --steps 40; }
st '{"step":10,"epoch":0,"pos":1000000000000,"best":4.2,"bad":0}' pos
st '{"step":10,"epoch":0,"pos":-1000000,"best":4.2,"bad":0}' pos
st '{"step":10,"epoch":-3,"example":0,"examples":1430,"best":4.2,"bad":0}' epoch
st '{"step":10,"epoch":11,"example":0,"examples":1430,"best":4.2,"bad":0}' epoch
st '{"step":4611686018427387904,"epoch":0,"example":0,"examples":1430,"best":4.2,"bad":0}' step
st '{"step":10,"epoch":0,"example":2000,"examples":1430,"best":4.2,"bad":0}' example
st '{"step":10,"epoch":0,"example":-4,"examples":1430,"best":4.2,"bad":0}' example
st '{"step":10,"epoch":0,"example":0,"examples":0,"best":4.2,"bad":0}' examples
st '{"step":10,"epoch":0,"example":0,"examples":1430,"best":-1,"bad":0}' best
st '{"step":10,"epoch":0,"example":0,"examples":1430,"best":"low","bad":0}' best
st '{"step":10,"epoch":0,"example":0,"examples":1430,"best":4.2,"bad":-1}' bad
st '{"step":10,"epoch":0,"example":0,"examples":1430,"best":4.2}' bad
st '{"epoch":0,"example":0,"examples":1430,"best":4.2,"bad":0}' step
setstate r.st.last s.st '[1, 2]'
expect 1 "checkpoint s.st: training state .* not a JSON object" -- "$mnemo" train --resume s.st --out s2.st --steps 40
# a state of an older mnemo (position in batches of its --batch) resumes with that --batch only
setstate r.st.last old.st '{"step":10,"epoch":0,"pos":10,"best":4.2,"bad":0}'
expect 0 "resuming at step 10 \(epoch 1, example 40 of 1430\)" -- "$mnemo" train --resume old.st --out old2.st --steps 11
expect 1 "old.st counts its position in batches of --batch 4" -- "$mnemo" train --resume old.st --out old3.st --batch 8 --steps 11

# 8. an existing checkpoint is replaced only with --force or when resuming it
"$mnemo" train "${common[@]}" --steps 5 --out k.st > /dev/null
cp k.st k.orig
expect 1 "k.st exists and this run did not write it: pass --force" -- "$mnemo" train "${common[@]}" --seed 9 --steps 5 --out k.st
check "an existing checkpoint was overwritten" cmp -s k.st k.orig
cp k.st lstm.safetensors
expect 1 "lstm.safetensors exists" -- "$mnemo" train "${common[@]}" --steps 2
mv k.st.last only.st.last
expect 1 "only.st.last exists" -- "$mnemo" train "${common[@]}" --steps 2 --out only.st
expect 1 "k.orig exists" -- "$mnemo" train --resume only.st.last --out k.orig --steps 6
expect 0 "resuming at step 5" -- "$mnemo" train --resume only.st.last --out only.st --steps 6
expect 0 "" -- "$mnemo" train "${common[@]}" --seed 9 --steps 5 --out k.st --force
check "--force did not replace the checkpoint" eval '! cmp -s k.st k.orig'

# 9. never a device, pipe, link or directory, not even with --force
mkfifo fifo.st
expect 1 "fifo.st is a pipe" -- "$mnemo" train "${common[@]}" --steps 2 --out fifo.st --force
check "a pipe was replaced" [ -p fifo.st ]
ln -s k.st link.st
expect 1 "link.st is a symbolic link" -- "$mnemo" train "${common[@]}" --steps 2 --out link.st --force
check "a symbolic link was replaced" [ -L link.st ]
mkdir dir.st.last
expect 1 "dir.st.last is a directory" -- "$mnemo" train "${common[@]}" --steps 2 --out dir.st --force
if mknod full.st c 1 7 2> /dev/null; then            # as root: a device node like /dev/full
  expect 1 "full.st is a device" -- "$mnemo" train "${common[@]}" --steps 2 --out full.st --force
  check "a device node was replaced" [ -c full.st ]
fi

# 10. temporaries of dead processes go (a live one's stay); a resumed run's
#     metrics do not double back
MNEMO_KILL_AT_STEP=8 "$mnemo" train "${common[@]}" --steps 10 --out t.st > /dev/null 2>&1
sh -c 'exit 0' & dead=$!; wait $dead
echo partial > "t.st.tmp.$dead"; echo partial > "t.st.last.tmp.$dead"; echo busy > "t.st.tmp.$$"
expect 0 "removed t.st.tmp.$dead, a temporary of process $dead" -- "$mnemo" train --resume t.st.last --steps 10
check "a stale temporary of the checkpoint stayed" [ ! -e "t.st.tmp.$dead" ]
check "a stale temporary of the latest checkpoint stayed" [ ! -e "t.st.last.tmp.$dead" ]
check "a live process's temporary was removed" [ -e "t.st.tmp.$$" ]
check "resumed metrics repeat or skip steps: $(train_steps t.st.metrics.jsonl | tr '\n' ' ')" \
  [ "$(train_steps t.st.metrics.jsonl | tr '\n' ' ')" = "1 2 3 4 5 6 7 8 9 10 " ]
check "validation lines repeat" [ "$(grep -c val_loss t.st.metrics.jsonl)" = 2 ]

# 11. a resumed run that does not beat the best it resumed names no best checkpoint
setstate r.st.last b0.st '{"step":23,"epoch":0,"example":92,"examples":1430,"best":0,"bad":0}'
expect 0 "not improved: no best checkpoint written" -- "$mnemo" train --resume b0.st --out b2.st --steps 25
check "b2.st named as the best checkpoint" eval '! grep -q "b2.st (best)" out.txt'
check "b2.st written" [ ! -e b2.st ]
check "b2.st.last not written" [ -e b2.st.last ]

# a checkpoint already at --steps trains and writes nothing
expect 0 "nothing to train: b0.st is at step 23" -- "$mnemo" train --resume b0.st --out b3.st --steps 23
check "a run with nothing to train wrote files" eval '[ ! -e b3.st.last ] && [ ! -e b3.st.metrics.jsonl ]'

# "nan", never "-nan", at the step the metrics would give that step
# (a NaN planted in the head's bias of a 2-step GRU checkpoint: the resumed
# run's first loss is nan; --lr is bounded, so no learning rate gets there)
expect 0 "" -- "$mnemo" train "${common[@]}" --model gru --steps 2 --out nan0.st
setnan nan0.st.last nan.st head.bias
cp nan0.st.metrics.jsonl nan.st.metrics.jsonl
expect 1 "loss is (nan|inf) at step [0-9]+; stopping" -- "$mnemo" train --resume nan.st --out nan.st --steps 20
check "printed -nan" eval '! grep -q -- -nan err.txt out.txt'
k=$(sed -n 's/.*loss is [a-z]* at step \([0-9]*\).*/\1/p' err.txt)
check "non-finite loss at step $k after metrics step $(train_steps nan.st.metrics.jsonl | tail -1)" \
  [ "$k" = "$(( $(train_steps nan.st.metrics.jsonl | tail -1) + 1 ))" ]

# --detect-anomaly names the first step, op and node whose output is not
# finite: at the latest the step whose loss was nan
setnan nan0.st.last anomaly.st head.bias
cp nan0.st.metrics.jsonl anomaly.st.metrics.jsonl
expect 1 "step [0-9]+: run [0-9]+, level [0-9]+: .*\".*\" produced (nan|inf|-inf) at element [0-9]+ \(anomaly mode\)" -- \
  "$mnemo" train --resume anomaly.st --out anomaly.st --steps 20 --detect-anomaly
a=$(sed -n 's/.*mnemo train: step \([0-9]*\): run.*/\1/p' err.txt)
check "anomaly at step $a, after the nan loss at step $k" eval '[ -n "$a" ] && [ "$a" -le "$k" ]'
check "anomaly at step $a after metrics step $(train_steps anomaly.st.metrics.jsonl | tail -1)" \
  [ "$a" = "$(( $(train_steps anomaly.st.metrics.jsonl | tail -1) + 1 ))" ]

# 20. --threads is capped at the CPUs this process may use, unless --oversubscribe
cpus=$(python3 -c 'import os; print(len(os.sched_getaffinity(0)))')
expect 0 "--threads $((cpus + 7)) is more than the $cpus CPUs available; using $cpus" -- \
  "$mnemo" train "${common[@]}" --threads $((cpus + 7)) --steps 2 --out th.st
check "the run did not use $cpus threads" grep -q ", $cpus threads$" out.txt
expect 0 ", $((cpus + 1)) threads$" -- "$mnemo" train "${common[@]}" --threads $((cpus + 1)) --oversubscribe --steps 2 --out th2.st

echo "cli_train: $checks checks, $failures failures"
[ "$failures" = 0 ]
