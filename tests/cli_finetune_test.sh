#!/usr/bin/env bash
# mnemo train --init-from / --init-map / --freeze / --lr-groups (issue 23):
# a language model pre-trained a few steps on one text is fine-tuned on
# another with its embedding frozen (bit-identical afterwards, also after a
# resume) and its own learning-rate groups; inspect names the origin; the
# same for the MLP and the tagger (also from an LM, renamed by a map);
# mnemo graph --freeze shows the work saved; a missing or corrupt
# --init-from, a bad --init-map, a shape mismatch and patterns that match
# nothing fail clearly and write nothing.
set -u
. "$(dirname "$(readlink -f "$0")")/cli_lib.sh"
mnemo=$(readlink -f "$1")
tmp=$(mktemp -d /tmp/mnemo-cli-finetune-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
# tensor FILE NAME: the bytes of a tensor of a safetensors file, as hex
tensor() {
  python3 - "$@" <<'PY'
import json, struct, sys
b = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
o = json.loads(b[8:8 + n])[sys.argv[2]]['data_offsets']
print(b[8 + n + o[0]:8 + n + o[1]].hex())
PY
}
same() { [ "$(tensor "$1" "$3")" = "$(tensor "$2" "$3")" ]; }
differ() { ! same "$@"; }
# nothing_written OUT: no checkpoint, latest copy or metrics for OUT
nothing_written() { [ ! -e "$1" ] && [ ! -e "$1.last" ] && [ ! -e "$1.metrics.jsonl" ]; }

head -c 30000 /usr/share/games/fortunes/literature > pre.txt
ft=/usr/share/games/fortunes/fortunes
common=(--hidden 16 --embed 8 --batch 4 --seq 16 --val-every 5 --val-batches 2 --threads 1)
expect 0 "" -- "$mnemo" train --data pre.txt "${common[@]}" --steps 5 --out pre.st

# 1. fine-tune: report, freezing, groups; the frozen embedding keeps its bytes
expect 0 "loaded 7: emb.weight, rnn.weight_ih_l0" -- "$mnemo" train --data "$ft" "${common[@]}" --steps 5 --out ft.st \
  --init-from pre.st --freeze 'emb.*' --lr-groups 'head.*=0.01,rnn.*_hh_l0=0.0003'
check "report: frozen" grep -qE "^frozen \(emb.\*\): 1 tensor, [0-9]+ of [0-9]+ parameters$" out.txt
check "report: groups" grep -q "learning rate 0.0003 for rnn.\*_hh_l0 (2 tensors" out.txt
check "report: vocabulary" grep -q "outside pre.st's vocabulary" out.txt
check "frozen embedding bit-identical" same pre.st ft.st emb.weight
check "trained rnn changed" differ pre.st ft.st rnn.weight_ih_l0
expect 0 "started from pre.st \(a lstm model at step 5\): 7 tensors loaded, 0 missing, 0 unexpected" -- "$mnemo" inspect ft.st
check "mnemo.init_from: the documented keys" init_from_is ft.st 5
check "inspect: frozen" grep -q "^frozen: emb\.\*$" out.txt
check "inspect: groups" grep -q "^learning-rate groups: head.\*=0.01,rnn.\*_hh_l0=0.0003$" out.txt
# a resumed fine-tuning run keeps its freezing, groups and vocabulary
expect 0 "resuming at step 5" -- "$mnemo" train --resume ft.st.last --steps 10
check "resume: frozen again" grep -q "frozen (emb.\*)" out.txt
check "resume: embedding still bit-identical" same pre.st ft.st.last emb.weight
check "resume: origin kept" sh -c "'$mnemo' inspect ft.st.last | grep -q 'started from pre.st'"
# sampling and eval read the fine-tuned checkpoint with its vocabulary
expect 0 "bits per character" -- "$mnemo" eval --ckpt ft.st --data pre.txt

# 2. a rename map and a new head: a wider model takes the embedding only
printf '# keep the embedding only\nrnn.* -> -\nhead.* -> -\n' > emb.map
expect 0 "missing \(initialised anew\) 6: rnn.weight_ih_l0" -- "$mnemo" train --data "$ft" "${common[@]}" --hidden 24 --steps 2 \
  --out wide.st --init-from pre.st --init-map emb.map --freeze 'emb.*'
check "map: unexpected named" grep -q "unexpected (not used) 6: rnn.weight_ih_l0" out.txt
check "map: embedding copied" same pre.st wide.st emb.weight
printf '* -> encoder.*\n' > enc.map
expect 1 "no tensor of it fits the lstm model \(7 missing, 7 unexpected\)" -- "$mnemo" train --data "$ft" "${common[@]}" --steps 2 \
  --out enc.st --init-from pre.st --init-map enc.map
check "no fit: nothing written" nothing_written enc.st

# 3. every model kind: the MLP's first layer frozen
mlp=(--model mlp --limit 600 --batch 32 --threads 1)
expect 0 "" -- "$mnemo" train "${mlp[@]}" --steps 2 --out mlp.st
expect 0 "frozen \(mlp.0.\*\): 2 tensors" -- "$mnemo" train "${mlp[@]}" --steps 2 --out mlp2.st --init-from mlp.st --freeze 'mlp.0.*' \
  --lr-groups 'mlp.1.*=0.0001'
check "mlp: frozen layer bit-identical" same mlp.st mlp2.st mlp.0.weight
check "mlp: head trained" differ mlp.st mlp2.st mlp.1.weight

# the tagger: from a tagger (its word vocabulary kept), and from a character
# LM of the same widths whose LSTM becomes the forward direction of the tagger's
mkdir brown
for i in $(seq 10 49); do
  printf 'The/at cat/nn sat/vbd ./.\nA/at dog/nn ran/vbd home/nr ./.\nThe/at man/nn saw/vbd a/at dog/nn ./.\n' > brown/ca$i
done
tag=(--model tagger --data brown --batch 4 --steps 2 --threads 1)
expect 0 "" -- "$mnemo" train "${tag[@]}" --out tag.st
expect 0 "loaded 11: emb.weight, lstm.weight_ih_l0" -- "$mnemo" train "${tag[@]}" --out tag2.st --init-from tag.st --freeze 'emb.*'
check "tagger: frozen embedding bit-identical" same tag.st tag2.st emb.weight
expect 0 "" -- "$mnemo" train --data pre.txt --hidden 128 --embed 100 --batch 4 --seq 16 --steps 2 --threads 1 --out lm128.st
printf 'rnn.* -> lstm.*\nemb.* -> -\nhead.* -> -\n' > lm2tag.map
expect 0 "loaded 4: lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0" -- \
  "$mnemo" train "${tag[@]}" --out tag3.st --init-from lm128.st --init-map lm2tag.map --freeze 'lstm.*_l0' --lr-groups 'emb.*=0.01'
check "tagger from LM: forward LSTM is the LM's" [ "$(tensor lm128.st rnn.weight_hh_l0)" = "$(tensor tag3.st lstm.weight_hh_l0)" ]
check "tagger from LM: reverse LSTM trained anew" [ "$(tensor lm128.st rnn.weight_hh_l0)" != "$(tensor tag3.st lstm.weight_hh_l0_reverse)" ]

# 4. freezing removes work: mnemo graph --format stats --freeze
stat() { sed -n "s/^$1 \([0-9]*\).*/\1/p" "$2"; }
expect 0 "" -- "$mnemo" graph --model lstm --format stats && mv out.txt full.txt
expect 0 "" -- "$mnemo" graph --model lstm --format stats --freeze 'emb.*,rnn.*' && mv out.txt frozen.txt
check "graph: fewer flops frozen" [ "$(stat flops frozen.txt)" -lt "$(stat flops full.txt)" ]
check "graph: smaller arena frozen" [ "$(stat arena_bytes frozen.txt)" -lt "$(stat arena_bytes full.txt)" ]
check "graph: fewer backward steps frozen" [ "$(sed -n 's/^steps .*(backward \([0-9]*\))/\1/p' frozen.txt)" -lt 100 ]
expect 2 "mnemo graph: --freeze: pattern \"xx\*\" matches no trainable parameter in the lstm model \(its parameters: emb.weight" -- "$mnemo" graph --model lstm --format stats --freeze 'xx*'

# 5. hostile input: clear errors, nothing written
bad() { local code=$1 pattern=$2; shift 2; expect "$code" "$pattern" -- "$mnemo" train --data "$ft" "${common[@]}" --steps 2 --out bad.st "$@"; check "$pattern: nothing written" nothing_written bad.st; rm -f bad.st bad.st.*; }
bad 1 "--init-from none.st: .*none.st" --init-from none.st
head -c 100 pre.st > cut.st
bad 1 "--init-from cut.st: " --init-from cut.st
mkfifo pipe.st
bad 1 "--init-from pipe.st: not a regular file" --init-from pipe.st
bad 1 "--init-from .: not a regular file" --init-from .
printf 'not a checkpoint at all' > junk.st
bad 1 "--init-from junk.st: " --init-from junk.st
printf 'rnn.* encoder.rnn.*\n' > noarrow.map
bad 2 "--init-map noarrow.map: rename rule 1: no \"->\"" --init-from pre.st --init-map noarrow.map
printf '# fine\nrnn.* -> rnn\n' > stars.map
bad 2 "--init-map stars.map: rename rule 2: FROM and TO hold different numbers of '\*'" --init-from pre.st --init-map stars.map
bad 2 "--init-map nomap.txt: cannot read it" --init-from pre.st --init-map nomap.txt
bad 2 "--init-map needs --init-from" --init-map emb.map
bad 1 "5 tensors of another shape: \"rnn.weight_ih_l0\" \[96,8\] in the store, \"rnn.weight_ih_l0\" \[64,8\] in the source.*--init-map rule" \
  --init-from pre.st --hidden 24
bad 2 "--freeze: pattern \"encoder.\*\" matches no trainable parameter in the lstm model \(its parameters: emb.weight, rnn.weight_ih_l0" \
  --init-from pre.st --freeze 'emb.*,encoder.*'
bad 2 "--freeze: pattern 2 of \"emb.\*,,head.\*\" is empty" --freeze 'emb.*,,head.*'
bad 2 "--lr-groups: item 1 \"emb.\*=fast\" is not PATTERN=LR" --lr-groups 'emb.*=fast'
bad 2 "--lr-groups: item 2 \"head.\*\" is not PATTERN=LR" --lr-groups 'emb.*=0.1,head.*'
bad 2 "--lr-groups: item 1 \"emb.\*=-1\" is not PATTERN=LR" --lr-groups 'emb.*=-1'
bad 2 "--lr-groups: pattern \"decoder.\*\" matches no trainable parameter of the lstm model" --lr-groups 'decoder.*=0.1'
bad 2 "--init-from and --resume exclude each other" --init-from pre.st --resume ft.st.last
bad 2 "--init-from: empty value" --init-from ''

echo "$checks checks, $failures failures"
[ "$failures" = 0 ]
