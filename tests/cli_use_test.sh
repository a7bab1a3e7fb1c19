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

echo "cli_use: $checks checks, $failures failures"
[ "$failures" = 0 ]
