#!/usr/bin/env bash
# The command as a new user meets it (issue 16): a run says why it stopped
# and early stopping counts --patience validations; errors say what is
# allowed in the user's words (the flag, or the JSON key of --config);
# stray arguments and unwritable --out folders are caught before any data
# is read; eval evaluates every example and says how many; --help shows
# each model's defaults; progress lines carry an ETA and the right epoch;
# --limit bounds every data set; the plotted series are right; graph takes
# the model flags and draws a readable forward view.
set -u
. "$(dirname "$(readlink -f "$0")")/cli_lib.sh"
mnemo=$(readlink -f "$1")
tmp=$(mktemp -d /tmp/mnemo-use-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

text=/usr/share/games/fortunes/fortunes
small=(--data "$text" --hidden 16 --embed 8 --batch 4 --seq 16 --val-batches 1 --threads 1)

# item 2: why a run stopped, naming the flag that changes it
expect 0 "^stopped: --steps 3 reached" -- "$mnemo" train "${small[@]}" --val-every 2 --steps 3 --out s.st
expect 0 "^stopped: the time limit of 1 s \(--time; 0 for none\) was reached at step [0-9]+" -- \
  "$mnemo" train "${small[@]}" --val-every 1000 --epochs 100000 --time 1 --out t.st
expect 0 "^stopped: all 1 epochs done \(--epochs\) at step 2" -- "$mnemo" train "${small[@]}" --limit 200 --val-every 0 --epochs 1 --out e.st

# item 3: --patience P stops at the P-th validation without a new best (a
# learning rate of 1e-12 leaves the weights, so every later validation ties)
expect 0 "^stopped early at step 3: the validation loss has not improved for 2 validations \(--patience 2; 0 turns early stopping off\)" -- \
  "$mnemo" train "${small[@]}" --val-every 1 --optim sgd --lr 1e-12 --patience 2 --steps 10 --out p.st
check "patience 2: $(grep -c val_loss p.st.metrics.jsonl) validations, not 3" [ "$(grep -c val_loss p.st.metrics.jsonl)" = 3 ]
expect 0 "^stopped: --steps 6 reached" -- "$mnemo" train "${small[@]}" --val-every 1 --optim sgd --lr 1e-12 --patience 0 --steps 6 --out p0.st

# item 5: errors say what is allowed, in the user's words; a --config
# file's value is named by its JSON key (and the file), a flag's by the flag
expect 2 "^mnemo train: --batch: 0 is not allowed; it takes a whole number from 1 to 65536$" -- "$mnemo" train --batch 0
expect 2 "^mnemo train: --seq: 1 is not allowed; it takes a whole number from 2 to 4096$" -- "$mnemo" train --seq 1
expect 2 "^mnemo train: --dropout: 1 is not allowed; it takes a number from 0 to below 1$" -- "$mnemo" train --dropout 1
expect 2 "^mnemo train: --val-every: -2 is not allowed; it takes a whole number from 0 up$" -- "$mnemo" train --val-every -2
echo '{"model": "lstm", "val_every": -2}' > ve.json
expect 2 "^mnemo train: ve.json: \"val_every\": -2 is not allowed; it takes a whole number from 0 up$" -- "$mnemo" train --config ve.json
echo '{"model": "transformer", "heads": 3}' > heads.json
expect 2 "^mnemo train: heads.json: \"heads\": 3 does not divide \"hidden\" 128" -- "$mnemo" train --config heads.json
echo '{"schedule": "zigzag"}' > sch.json
expect 2 "^mnemo train: sch.json: \"schedule\": unknown schedule \"zigzag\"; it takes constant, cosine" -- "$mnemo" train --config sch.json

# item 6: stray words are named, not "--ckpt is required"; a --out in a
# folder that does not exist fails before the data is read
expect 2 "^mnemo sample: unexpected argument \"extra_arg\"" -- "$mnemo" sample --ckpt x.st extra_arg
expect 2 "^mnemo eval: unexpected argument \"extra_arg\"" -- "$mnemo" eval --ckpt x.st extra_arg
expect 1 "^mnemo train: --out: /nonexistent/dir/x.st: the folder /nonexistent/dir does not exist$" -- \
  "$mnemo" train "${small[@]}" --steps 1 --out /nonexistent/dir/x.st
check "the data was read before --out was checked" eval '! grep -q "parameters" out.txt'
expect 1 "^mnemo train: --metrics: nodir/m.jsonl: the folder nodir does not exist$" -- \
  "$mnemo" train "${small[@]}" --steps 1 --out m.st --metrics nodir/m.jsonl

echo "cli_use: $checks checks, $failures failures"
[ "$failures" = 0 ]
