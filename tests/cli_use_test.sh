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

# items 7, 16: eval evaluates every example (the last batch holds the
# rest, through mn_rebatch) and says how many; train says how much each
# validation reads, and when it reads all of the split its loss is eval's
expect 0 "^validation: all 75 windows of the validation split \(18 batches of 4 and one of the rest\)$" -- \
  "$mnemo" train "${small[@]}" --val-batches 100 --val-every 5 --steps 5 --out all.st
expect 0 "^evaluated all 75 windows of 16 characters: 18 batches of 4 and one of 3 \(the last 3 of 1204 characters do not fill a window\)$" -- \
  "$mnemo" eval --ckpt all.st
val=$(sed -n 's/.*"val_loss": \([0-9.]*\).*/\1/p' all.st.metrics.jsonl | tail -1)
ev=$(sed -n 's/^loss \([0-9.]*\) nats.*/\1/p' out.txt)
check "train's validation over all windows ($val) is not eval's loss ($ev)" awk -v a="$val" -v b="$ev" 'BEGIN { exit !(a - b < 1e-4 && b - a < 1e-4) }'
expect 0 "^validation: 4 of the 75 windows of the validation split \(1 batch of 4, --val-batches\); mnemo eval uses all$" -- \
  "$mnemo" train "${small[@]}" --val-every 5 --steps 5 --out one.st
printf 'The cat sat on the mat and more text here.\n' > short.txt
expect 0 "^evaluated all 2 windows of 16 characters: one batch of 2 \(the last 10 of 43 characters" -- "$mnemo" eval --ckpt all.st --data short.txt
printf 'abc' > tiny.txt
expect 1 "^mnemo eval: text tiny.txt: 3 characters are fewer than one window of the model's 16 characters" -- "$mnemo" eval --ckpt all.st --data tiny.txt
check "eval named a flag it does not take: $(cat err.txt)" eval '! grep -q -- "--batch" err.txt'
expect 0 "^validation: 1024 of the 5000 images of the validation split \(16 batches of 64, --val-batches\)" -- \
  "$mnemo" train --model mlp --limit 640 --epochs 1 --hidden 32 --threads 1 --out mlp.st
check "mlp validation lines lack the accuracy" grep -q '"val_acc": 0\.[0-9]*' mlp.st.metrics.jsonl
expect 0 "^evaluated all 10000 test images: 156 batches of 64 and one of 16$" -- "$mnemo" eval --ckpt mlp.st
check "eval's accuracy is not over 10000 images: $(grep ^accuracy out.txt)" grep -q "^accuracy 0\.[0-9]* ([0-9]* of 10000)$" out.txt

# item 8: --limit keeps the first N training sentences of the tagger too
expect 0 "^tagger on .*: [0-9]+ parameters, 2 batches of 32 per epoch" -- \
  "$mnemo" train --model tagger --limit 64 --batch 32 --hidden 16 --embed 16 --epochs 1 --threads 1 --out tg.st

# item 4: --help shows each model's defaults, the optimizers, schedules and
# activations; docs/cli.md holds the same table; a run prints its config
expect 0 "^ +default 32 \(lstm gru rnn tagger\); 16 \(transformer\); 128 \(vae\); 64 \(mlp\)$" -- "$mnemo" train --help
help=$("$mnemo" train --help)
check "--help lacks the lr defaults" grep -qE "^ +default 0.003 \(lstm gru rnn\); 0.001 \(transformer vae mlp\); 0.002 \(tagger\)$" <<<"$help"
check "--help lacks the time limit" grep -qE "^ +default 120 \(lstm gru rnn transformer\); 0 \(vae mlp tagger\)$" <<<"$help"
check "--help lacks the optimizers" grep -qE "^  --optim NAME .*sgd.*adam, adamw, rmsprop, adagrad, lion" <<<"$help"
check "--help lacks the schedules" grep -qE "^  --schedule NAME .*constant, cosine, warmup_cosine, linear, step, exponential, plateau" <<<"$help"
check "--help lacks the activations" grep -qE "^  --activation takes: .*tanh, .*relu" <<<"$help"
docs=$(dirname "$(readlink -f "$0")")/../docs/cli.md
check "docs/cli.md's flag table differs from mnemo train --help" \
  diff <(sed -n '/^<!-- train --help -->/,/^<!-- end -->/p' "$docs" | grep '^  ') <(awk '/^  --model KIND/ { p = 1 } /^  --activation takes/ { p = 0 } p' <<<"$help")
expect 0 '^config: \{"model": "lstm", .*"batch": 4, .*"lr": 0.003, ' -- "$mnemo" train "${small[@]}" --steps 1 --out cfg.st

# item 1: progress lines carry an ETA from the run's pace (not the --time
# left), the last step's line shows the epoch it belongs to, on a terminal
# (script(1) gives one) too; eval shows its progress on a terminal
expect 0 "^epoch 1 step 50/60 loss [0-9.]+ [0-9]+ tok/s ETA 00:0[0-9]$" -- "$mnemo" train "${small[@]}" --steps 60 --val-every 1000 --out eta.st
check "no progress line at the last step: $(grep ETA out.txt | tail -1)" grep -qE "^epoch 1 step 60/60 .* ETA 00:0[0-9]$" out.txt
expect 0 "^epoch 2 step 96/96 loss" -- "$mnemo" train "${small[@]}" --limit 3300 --epochs 2 --val-every 1000 --out ep.st
script -qec "'$mnemo' train --data '$text' --hidden 16 --embed 8 --batch 4 --seq 16 --threads 1 --steps 30 --val-every 1000 --out tty.st" /dev/null > tty.txt 2>&1
last=$(tr '\r' '\n' < tty.txt | grep 'ETA' | tail -1)
check "a terminal's last progress line: \"$last\"" grep -qE "^  epoch 1  step 30/30  loss [0-9.]+  [0-9]+ tok/s  ETA 00:0[0-9]" <<<"$last"
script -qec "'$mnemo' eval --ckpt tty.st" /dev/null > ttyeval.txt 2>&1
check "eval shows no progress on a terminal" grep -q "evaluating: batch 19 of 19" ttyeval.txt

# item 9: the plot draws what tests read here: X.loss.gp is gnuplot's whole
# input. Train points are the steps' own losses (a validation line's
# running mean is not one more point), once each, smoothed beside; the
# validation loss is its own series; classifiers get a panel of accuracy
block() { awk -v t="# $2" '$0 == t { p = 1; next } /^e$/ { p = 0 } p' "$1"; }
"$mnemo" train "${small[@]}" --val-every 5 --steps 20 --out pl.st > /dev/null
check "no gnuplot input beside the plot" [ -s pl.st.loss.gp ]
check "plotted train steps: $(block pl.st.loss.gp 'train (each step)' | cut -d' ' -f1 | tr '\n' ' ')" \
  [ "$(block pl.st.loss.gp 'train (each step)' | cut -d' ' -f1 | tr '\n' ' ')" = "$(seq 1 20 | tr '\n' ' ')" ]
check "plotted train losses are not the steps' losses" [ "$(block pl.st.loss.gp 'train (each step)' | cut -d' ' -f2 | tr '\n' ' ')" = \
  "$(grep -v val_loss pl.st.metrics.jsonl | sed -n 's/.*"train_loss": \([0-9.]*\),.*/\1/p' | sed 's/0*$//' | tr '\n' ' ')" ]
check "no smoothed train series of 20 steps" [ "$(awk '/^# train \(smoothed/ { p = 1; next } /^e$/ { p = 0 } p' pl.st.loss.gp | wc -l)" = 20 ]
check "plotted validation: $(block pl.st.loss.gp validation | tr '\n' ' ')" \
  [ "$(block pl.st.loss.gp validation | cut -d' ' -f1 | tr '\n' ' ')" = "5 10 15 20 " ]
check "a text model got an accuracy panel" eval '! grep -q multiplot pl.st.loss.gp'
"$mnemo" train --model mlp --limit 640 --epochs 2 --val-every 5 --hidden 32 --threads 1 --out plm.st > /dev/null
check "the mlp's plot lacks its accuracy panel" grep -q "^set multiplot layout 2,1" plm.st.loss.gp
check "plotted accuracy: $(block plm.st.loss.gp val_acc | tr '\n' ' ')" \
  [ "$(block plm.st.loss.gp val_acc | cut -d' ' -f2 | tr '\n' ' ')" = "$(sed -n 's/.*"val_acc": \([0-9.]*\),.*/\1/p' plm.st.metrics.jsonl | sed 's/0*$//' | tr '\n' ' ')" ]
# the VAE grid: 3x (84 px images) under two labelled bands
"$mnemo" train --model vae --limit 256 --batch 32 --hidden 32 --epochs 1 --threads 1 --out vae.st > /dev/null
expect 0 "^wrote grid.png: 32 samples from the prior \(top half\), 16 test images each beside its reconstruction" -- "$mnemo" sample --ckpt vae.st --out grid.png
size=$(python3 -c 'import struct,sys; b=open(sys.argv[1],"rb").read(24); print("%dx%d" % struct.unpack(">II", b[16:24]))' grid.png)
check "the VAE grid is $size, not 704x764" [ "$size" = 704x764 ]

# item 10: graph takes train's model flags (checked alike) and draws a
# readable forward-only view
expect 0 "^parameters 9376$" -- "$mnemo" graph --model lstm --seq 4 --hidden 8 --format stats
check "--hidden 8 ignored: $(grep -E '^(model|parameters)' out.txt | tr '\n' ' ')" grep -q "^model lstm (batch 32)$" out.txt
expect 0 "^steps [0-9]+ \(backward 0\)$" -- "$mnemo" graph --model lstm --seq 3 --forward-only --format stats
nodes=$(sed -n 's/^nodes //p' out.txt)
check "a forward-only lstm of 3 steps has $nodes nodes (more than 150)" [ "${nodes:-999}" -le 150 ]
expect 2 "^mnemo graph: --seq: 1 is not allowed; it takes a whole number from 2 to 4096$" -- "$mnemo" graph --model lstm --seq 1
expect 2 "^mnemo graph: --hidden: bad value \"x\"" -- "$mnemo" graph --model lstm --hidden x
expect 2 "^mnemo graph: unexpected argument \"lstm\"" -- "$mnemo" graph lstm
if command -v dot > /dev/null; then
  check "dot cannot draw the forward-only lstm in 60 s" \
    eval "'$mnemo' graph --model lstm --seq 3 --forward-only | timeout 60 dot -Tsvg > fwd.svg && grep -q '<svg' fwd.svg"
fi

# item 11: the README's defaults are the command's, and every training
# command of its tour has a measured time
readme=$(dirname "$(readlink -f "$0")")/../README.md
for m in lstm transformer mlp vae tagger; do
  b=$("$mnemo" graph --model $m --format stats | sed -n 's/^model .* (batch \([0-9]*\))$/\1/p')
  row=$(grep -E "^\| ($m|$m, [a-z, ]*|[a-z, ]*, $m) \|" "$readme" | head -1)
  check "README's $m row (batch $b): $row" eval "[ -n '$b' ] && [ \"\$(cut -d'|' -f4 <<<'$row' | tr -d ' ')\" = '$b' ]"
done
for cmd in $(grep -oE '^\$m train( --model [a-z]+)?' "$readme" | sed 's/^\$m //; s/ /_/g' | sort -u); do
  c=$(tr _ ' ' <<<"$cmd")
  check "README has no time for '$c'" grep -qE "^\| \`$c[ \`]" "$readme"
done

echo "cli_use: $checks checks, $failures failures"
[ "$failures" = 0 ]
