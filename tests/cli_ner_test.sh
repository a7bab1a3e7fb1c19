#!/usr/bin/env bash
# mnemo train --model ner end to end (issue 20): a BiLSTM-CRF with character
# features trains on a slice of the Brown-derived CoNLL data (committed
# fixtures, 400/120/120 sentences) and reaches a stated test entity F1;
# the dev and test reports come in seqeval's layout, and `mnemo eval`
# repeats the test report from the checkpoint; --no-crf and
# --char-filters 0 run; word vectors load from a text file (with a
# lower-case fallback); malformed files, vectors and flags are refused
# with the file and line or the flag named. --train-scheme iobes trains and
# decodes in IOBES (eval reads the scheme from the checkpoint); --resume of
# CKPT.last continues a run bit-identically, from within an epoch or
# between epochs. --init-from takes a ner checkpoint (word rows matched by
# word) or, through --init-map, another model (a character LM's embedding
# as the character rows, by code point); tags only from the same tags.
set -u
. "$(dirname "$(readlink -f "$0")")/cli_lib.sh"
mnemo=$(readlink -f "$1")
fx=$(readlink -f "$(dirname "$(readlink -f "$0")")/fixtures")
tmp=$(mktemp -d /tmp/mnemo-cli-ner-XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
cd "$tmp"
data=(--data "$fx/ner_brown_train.conll" --valid "$fx/ner_brown_dev.conll" --test "$fx/ner_brown_test.conll")
small=(--embed 32 --hidden 32 --char-filters 16 --char-dim 16 --lr 0.01 --dropout 0.2 --threads 1)

# 8 epochs of the BiLSTM-CRF: test entity micro F1 >= 0.45 (0.58 after 5
# epochs when written; an untrained tagger predicts no entity: F1 0).
expect 0 "best dev entity F1" -- "$mnemo" train --model ner "${data[@]}" "${small[@]}" --epochs 8 --out ner.safetensors
cp out.txt crf.txt
check "epoch lines" grep -qE "^epoch 8: [0-9]+ steps, train loss [0-9.]+, .* dev entity F1 0\.[0-9]{4}" crf.txt
check "scheme detected" grep -q "^tags: IOB2 (detected on the training file), 5 tags" crf.txt
check "seqeval header" grep -qE "^ +precision +recall +f1-score +support$" crf.txt
check "entity rows" grep -qE "^ +NAME +0\.[0-9]{4} +0\.[0-9]{4} +0\.[0-9]{4} +[0-9]+$" crf.txt
check "token rows" grep -qE "^ +I-TITLE +0\.[0-9]{4}" crf.txt
f1=$(awk '/^test: .*entity level/ {t = 1} t && /micro avg/ {print $5; exit}' crf.txt)
check "test micro F1 $f1 >= 0.45" awk -v f="$f1" 'BEGIN { exit !(f >= 0.45) }'
check "test support: 171 entities" grep -qE "micro avg .* 171$" crf.txt
check "checkpoint written" test -s ner.safetensors
check "checkpoint metadata" grep -qa '"mnemo.model":"ner"' ner.safetensors
expect 2 "exists; --force" -- "$mnemo" train --model ner "${data[@]}" "${small[@]}" --epochs 1 --out ner.safetensors
# mnemo eval of the checkpoint: the same test report (the best epoch's weights were saved)
expect 0 "BiLSTM-CRF tagger, 5 tags" -- "$mnemo" eval --ckpt ner.safetensors --data "$fx/ner_brown_test.conll"
check "eval repeats train's test report" test "$(grep "micro avg" out.txt)" = "$(awk '/^test: .*entity level/ {t = 1} t && /micro avg/ {print; exit}' crf.txt)"
# a tag the model never saw is reported (a row of its own), never predicted
sed '0,/ O$/s// B-PLACE/' "$fx/ner_brown_test.conll" > unseen.conll
expect 0 "^ +PLACE +0\.0000 +0\.0000 +0\.0000 +1$" -- "$mnemo" eval --ckpt ner.safetensors --data unseen.conll

# the other configurations run and report
expect 0 "BiLSTM \+ softmax, character CNN" -- "$mnemo" train --model ner "${data[@]}" "${small[@]}" --epochs 1 --no-crf
expect 0 "BiLSTM-CRF, no character features" -- "$mnemo" train --model ner "${data[@]}" "${small[@]}" --epochs 1 --char-filters 0
expect 0 "^epoch 1 \(partial\): 3 steps" -- "$mnemo" train --model ner "${data[@]}" "${small[@]}" --steps 3

# word vectors: exact words, then lower case; the dimension sets --embed
printf '3 4\nthe 1 2 3 4\nfulton 0.5 0.5 0.5 0.5\nzzzz 1 1 1 1\n' > vec.txt
expect 0 "vectors vec.txt: 1 of [0-9]+ words found \(2 more by lower case\)" -- \
  "$mnemo" train --model ner "${data[@]}" --hidden 8 --char-filters 0 --steps 1 --vectors vec.txt
printf 'the 1 2 3 4\nof 1 2 3\n' > bad.txt
expect 1 "vectors bad.txt line 2: want a word and 4 numbers" -- "$mnemo" train --model ner "${data[@]}" --steps 1 --vectors bad.txt
expect 1 "vectors vec.txt hold 4 numbers per word, --embed says 32" -- "$mnemo" train --model ner "${data[@]}" "${small[@]}" --steps 1 --vectors vec.txt

# malformed data and flags
printf 'Alice B-PER\nSmith I-PER extra\n' > bad.conll
expect 1 "bad.conll line 2" -- "$mnemo" train --model ner --data bad.conll --valid "$fx/ner_brown_dev.conll" --test "$fx/ner_brown_test.conll" --steps 1
expect 1 "missing.conll" -- "$mnemo" train --model ner --data missing.conll --valid "$fx/ner_brown_dev.conll" --test "$fx/ner_brown_test.conll"
expect 1 "nowhere/brown-ner/train.conll.*scripts/setup.sh" -- env MNEMO_DATA="$tmp/nowhere" "$mnemo" train --model=ner --steps 1
expect 2 "--scheme" -- "$mnemo" train --model ner "${data[@]}" --scheme bilou
expect 2 "--dropout: bad value" -- "$mnemo" train --model ner "${data[@]}" --dropout 1.5
expect 2 "unknown or incomplete option \"--bogus\"" -- "$mnemo" train --model ner --bogus
expect 0 "usage: mnemo train --model ner" -- "$mnemo" train --model ner --help

# a scheme given with --scheme is the one the files are checked against:
# IOB2 data breaks IOBES (a B- without its E-), counted and named by line
expect 0 "^tags: IOBES \(--scheme\), 5 tags; converted to IOB2" -- "$mnemo" train --model ner "${data[@]}" "${small[@]}" --limit 50 \
  --eval-limit 10 --steps 1 --scheme iobes
check "IOBES violations named by file and line" grep -qE "^warning: .*ner_brown_train.conll: [0-9]+ tokens break IOBES \(first at line 5\)" out.txt
# IOB1 input (CoNLL-2003's scheme) is detected and converted
awk '{ if (NF && $NF ~ /^B-/) { sub(/^B-/, "I-", $NF) } print }' "$fx/ner_brown_dev.conll" > iob1.conll
expect 0 "^tags: IOB1 \(detected on the training file\)" -- "$mnemo" train --model ner --data iob1.conll --valid "$fx/ner_brown_dev.conll" \
  --test "$fx/ner_brown_test.conll" "${small[@]}" --steps 1

# IOBES: the tagger learns S-/E- tags, the CRF table forbids B-X -> O (so
# every decoded span is closed) and the entity report is seqeval's reading
expect 0 "best dev entity F1" -- "$mnemo" train --model ner "${data[@]}" "${small[@]}" --epochs 3 --train-scheme iobes --out iobes.st
cp out.txt iobes.txt
check "converted to IOBES" grep -q "^tags: IOB2 (detected on the training file), 5 tags; converted to IOBES" iobes.txt
check "IOBES tags in the token report" grep -qE "^ +S-NAME +0\.[0-9]{4}" iobes.txt
check "IOBES tags in the token report" grep -qE "^ +E-TITLE +0\.[0-9]{4}" iobes.txt
f1=$(awk '/^test: .*entity level/ {t = 1} t && /micro avg/ {print $5; exit}' iobes.txt)
check "IOBES test micro F1 $f1 > 0.1" awk -v f="$f1" 'BEGIN { exit !(f > 0.1) }'
check "IOBES test support: 171 entities" grep -qE "micro avg .* 171$" iobes.txt
expect 0 "BiLSTM-CRF tagger, 9 tags" -- "$mnemo" eval --ckpt iobes.st --data "$fx/ner_brown_test.conll"
check "eval of an IOBES checkpoint repeats train's test report" \
  test "$(grep "micro avg" out.txt)" = "$(awk '/^test: .*entity level/ {t = 1} t && /micro avg/ {print; exit}' iobes.txt)"
expect 2 "--train-scheme: \"ioe2\" is not iob2 or iobes" -- "$mnemo" train --model ner "${data[@]}" --train-scheme ioe2

# --resume: an unbroken run of 3 epochs, against one stopped within epoch
# 2 (--steps 15 of 11 per epoch) and resumed, and one stopped after epoch 1
# and resumed: the checkpoints hold the same bytes (weights, Adam's state)
same_tensors() {
  python3 - "$1" "$2" <<'PY'
import json, struct, sys
def load(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n]); d = b[8 + n:]
    return {k: d[v['data_offsets'][0]:v['data_offsets'][1]] for k, v in h.items() if k != '__metadata__'}
a, b = load(sys.argv[1]), load(sys.argv[2])
diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
if diff or len(a) < 20: print(f"{len(a)} tensors; differ: {diff[:4]}"); sys.exit(1)
PY
}
fast=("${small[@]}" --limit 160 --eval-limit 30)
expect 0 "checkpoint whole.st, the run to resume in whole.st.last" -- "$mnemo" train --model ner "${data[@]}" "${fast[@]}" --epochs 3 --out whole.st
cp out.txt whole.txt
expect 0 "^epoch 2 \(partial\): 4 steps" -- "$mnemo" train --model ner "${data[@]}" "${fast[@]}" --epochs 3 --steps 15 --out mid.st
expect 0 "resuming mid.st.last at step 15 \(epoch 2, batch 4\)" -- "$mnemo" train --model ner --resume mid.st.last
check "resumed within an epoch: the same tensors as unbroken" same_tensors whole.st mid.st
check "resumed within an epoch: the same test report" \
  test "$(grep -A8 "^test: .*entity level" out.txt | tail -7)" = "$(grep -A8 "^test: .*entity level" whole.txt | tail -7)"
check "resumed within an epoch: the same .last" same_tensors whole.st.last mid.st.last
expect 0 "^epoch 1: 11 steps" -- "$mnemo" train --model ner "${data[@]}" "${fast[@]}" --epochs 1 --out one.st
expect 0 "resuming one.st.last at step 11 \(epoch 2, batch 0\)" -- "$mnemo" train --resume one.st.last --epochs 3   # no --model: the checkpoint names it
check "resumed between epochs: the same tensors as unbroken" same_tensors whole.st one.st
expect 2 "--resume continues the run stored in one.st.last .* --lr cannot change it" -- \
  "$mnemo" train --model ner --resume one.st.last --epochs 4 --lr 0.1
expect 1 "one.st.last: its run has done its 3 epochs; give --epochs to train further" -- "$mnemo" train --model ner --resume one.st.last
# --init-from a ner checkpoint of the same words and tags, --freeze by
# pattern (issue 23): the frozen tensors keep the checkpoint's bytes
expect 0 "^  15 tensors loaded, 0 missing" -- "$mnemo" train --model ner "${data[@]}" "${fast[@]}" --epochs 1 \
  --init-from one.st --freeze 'ner.words.*,ner.chars.*' --out ft.st
check "two tensors frozen" grep -q "^frozen: 2 parameters" out.txt
check "frozen tensors keep the checkpoint's values, the others train" python3 - one.st ft.st <<'PY'
import json, struct, sys
def load(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n]); d = b[8 + n:]
    return {k: d[v['data_offsets'][0]:v['data_offsets'][1]] for k, v in h.items() if k != '__metadata__'}
a, b = load(sys.argv[1]), load(sys.argv[2])
same = sorted(k for k in a if k.startswith('ner.') and a[k] == b[k])
sys.exit(0 if same == ['ner.chars.weight', 'ner.words.weight'] else print(same) or 1)
PY
# a ner checkpoint of other words: rows matched by word (the frozen word
# rows of the new run are the source's rows of the same words); tags must
# be the same (an IOBES run has other tags)
expect 0 "ner.words.weight <- ner.words.weight: 287 of 287 rows \(by word\)" -- "$mnemo" train --model ner "${data[@]}" "${fast[@]}" \
  --limit 100 --init-from one.st --freeze 'ner.words.*' --steps 1 --out fw.st
check "word rows copied by word" python3 - one.st fw.st ner.words.weight mnemo.ner.words <<'PY'
import json, struct, sys
def load(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n]); d = b[8 + n:]
    return {k: d[v['data_offsets'][0]:v['data_offsets'][1]] for k, v in h.items() if k != '__metadata__'}, h['__metadata__']
(a, ma), (b, mb) = load(sys.argv[1]), load(sys.argv[2])
name, key = sys.argv[3], sys.argv[4]
wa, wb = json.loads(ma[key]), json.loads(mb[key])
ia = {w: i for i, w in enumerate(wa)}
C = len(b[name]) // 4 // len(wb)
row = lambda t, i: t[i * C * 4:(i + 1) * C * 4]
moved = sum(ia[w] != j for j, w in enumerate(wb))
ok = all(row(a[name], ia[w]) == row(b[name], j) for j, w in enumerate(wb))
sys.exit(0 if ok and moved > 100 else print(moved, ok) or 1)
PY
expect 1 "--init-from one.st: \"ner.out.weight\" holds rows of tags, and it is not a ner checkpoint of this run's tags" -- \
  "$mnemo" train --model ner "${data[@]}" "${fast[@]}" --train-scheme iobes --init-from one.st --steps 1
# --init-map: the character embedding from a character LSTM language model
# trained on the words of the training file (rows by code point)
awk 'NF == 0 { if (l != "") print l; l = ""; next } { l = l (l == "" ? "" : " ") $1 } END { print l }' "$fx/ner_brown_train.conll" > words.txt
"$mnemo" train --model lstm --data words.txt --embed 16 --hidden 16 --steps 2 --threads 1 --out lm.st > /dev/null 2>&1
printf 'emb.weight -> ner.chars.weight\n# the rest: no place in the tagger\n* -> -\n' > map.txt
expect 0 "ner.chars.weight <- emb.weight: [0-9]+ of 259 rows \(by code point\)" -- "$mnemo" train --model ner "${data[@]}" "${fast[@]}" \
  --init-from lm.st --init-map map.txt --freeze 'ner.chars.*' --steps 1 --out fc.st
check "1 tensor loaded, 14 missing, 6 unexpected" grep -q "1 tensors loaded, 14 missing (kept their random start), 6 unexpected" out.txt
check "character rows by code point" python3 - lm.st fc.st <<'PY'
import json, struct, sys
def load(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n]); d = b[8 + n:]
    return {k: d[v['data_offsets'][0]:v['data_offsets'][1]] for k, v in h.items() if k != '__metadata__'}, h['__metadata__']
(a, ma), (b, mb) = load(sys.argv[1]), load(sys.argv[2])
cps = json.loads(ma['mnemo.vocab'])
row = lambda t, i: t[i * 64:(i + 1) * 64]
ok = [row(a['emb.weight'], k) == row(b['ner.chars.weight'], cp + 3) for k, cp in enumerate(cps) if 0 < cp < 128]
sys.exit(0 if len(ok) > 40 and all(ok) else print(ok) or 1)
PY
expect 0 "started from lm.st \(a lstm model at step 2\): 1 tensors loaded, 14 missing, 6 unexpected; renamed by map.txt" -- "$mnemo" inspect fc.st
check "mnemo.init_from: the keys the other models write" init_from_is fc.st 2
printf 'head.* -> ner.out.*\n* -> -\n' > tagmap.txt
expect 1 "--init-from lm.st: \"head.weight\" holds rows of tags" -- \
  "$mnemo" train --model ner "${data[@]}" "${fast[@]}" --init-from lm.st --init-map tagmap.txt --steps 1
expect 1 "--init-from lm.st: no tensor of it fits the tagger \(15 missing, 7 unexpected\); rename them with --init-map" -- \
  "$mnemo" train --model ner "${data[@]}" "${fast[@]}" --init-from lm.st --steps 1
printf 'emb.weight ner.chars.weight\n' > bad.txt
# a bad map is a usage error (exit 2), as for the other models: a bad rule,
# an unreadable file, two tensors renamed to one
expect 2 "--init-map bad.txt: rename rule 1: no \"->\"" -- \
  "$mnemo" train --model ner "${data[@]}" "${fast[@]}" --init-from lm.st --init-map bad.txt --steps 1
expect 2 "--init-map nomap.txt: cannot read it" -- \
  "$mnemo" train --model ner "${data[@]}" "${fast[@]}" --init-from lm.st --init-map nomap.txt --steps 1
printf 'emb.weight -> ner.chars.weight\nhead.weight -> ner.chars.weight\n* -> -\n' > twomap.txt
expect 2 "--init-map twomap.txt: two tensors of lm.st become \"ner.chars.weight\"" -- \
  "$mnemo" train --model ner "${data[@]}" "${fast[@]}" --init-from lm.st --init-map twomap.txt --steps 1
expect 2 "--init-map needs --init-from" -- "$mnemo" train --model ner "${data[@]}" "${fast[@]}" --init-map map.txt --steps 1
expect 2 "--freeze: .*nope" -- "$mnemo" train --model ner "${data[@]}" "${fast[@]}" --freeze 'nope.*' --steps 1
expect 1 "not the .last checkpoint of a .mnemo train --model ner. run" -- "$mnemo" train --model ner --resume one.st --out x.st
# a .last whose data changed since: the vocabulary differs
sed 's/^The /Thee /' "$fx/ner_brown_train.conll" > changed.conll
"$mnemo" train --model ner --data changed.conll --valid "$fx/ner_brown_dev.conll" --test "$fx/ner_brown_test.conll" "${fast[@]}" \
  --steps 2 --out changed.st > /dev/null 2>&1
cp "$fx/ner_brown_train.conll" changed.conll
expect 1 "changed.st.last: its words or tags differ from those of .*changed.conll now" -- "$mnemo" train --model ner --resume changed.st.last

echo "cli_ner: $checks checks, $failures failures"
[ "$failures" -eq 0 ]
