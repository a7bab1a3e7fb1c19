#!/usr/bin/env bash
# Whole-corpus checks of the translation data foundations (issue 19), too
# slow for the suite: pair counts for KJV / Reina-Valera 1909 and WEB /
# Reina-Valera, BPE learning time for 8,000 merges and an exact round trip
# on every verse, and independent cross-checks written in Python with the
# standard library (run with /usr/bin/python3):
#  - BPE: a plain Python learner (same documented rule) gives the same merges
#    on a slice of the training side;
#  - 13a: Python's `re` with sacreBLEU's documented patterns tokenises every
#    verse (English and Spanish) exactly as tools/bleu.c;
#  - BLEU: NLTK's corpus_bleu on the 13a-tokenised test verses (WEB as the
#    hypothesis, KJV as the reference) equals tools/bleu.c's.
# Usage: scripts/check-mt-corpus.sh [BUILD_DIR]   (default build/)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
bin=$build/tests/test_mt_data
[ -x "$bin" ] || { echo "check-mt-corpus: $bin missing (run scripts/build.sh)" >&2; exit 1; }
data=${MNEMO_DATA:-$HOME/.cache/mnemo}/parallel
[ -f "$data/kjv.imp" ] && [ -f "$data/rv1909.imp" ] && [ -f "$data/web.imp" ] || "$root/scripts/make-parallel.sh" "$data"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== KJV -> Reina-Valera 1909"
"$bin" --corpus "$data/kjv.imp" "$data/rv1909.imp" 8259
echo "== WEB -> Reina-Valera 1909"
"$bin" --corpus "$data/web.imp" "$data/rv1909.imp" 8259

"$bin" --pairs "$data/kjv.imp" "$data/rv1909.imp" "$tmp/kjv_rv.tsv"
"$bin" --pairs "$data/web.imp" "$data/kjv.imp" "$tmp/web_kjv.tsv"
awk -F'\t' '$2 == "train" && n < 3000 { print $3; print $4; n++ }' "$tmp/kjv_rv.tsv" > "$tmp/slice.txt"
"$bin" --learn "$tmp/slice.txt" 559 "$tmp/slice.json"
cut -f3 "$tmp/kjv_rv.tsv" > "$tmp/all.txt"
cut -f4 "$tmp/kjv_rv.tsv" >> "$tmp/all.txt"
"$bin" --tok13a "$tmp/all.txt" "$tmp/all.tok"
awk -F'\t' '$2 == "test" { print $3 > "'"$tmp"'/hyp.txt"; print $4 > "'"$tmp"'/ref.txt" }' "$tmp/web_kjv.tsv"
"$bin" --tok13a "$tmp/hyp.txt" "$tmp/hyp.tok"
"$bin" --tok13a "$tmp/ref.txt" "$tmp/ref.tok"
"$bin" --bleu "$tmp/hyp.tok" "$tmp/ref.tok" > "$tmp/bleu_tok.txt"
"$bin" --bleu "$tmp/hyp.txt" "$tmp/ref.txt" > "$tmp/bleu_raw.txt"

/usr/bin/python3 - "$tmp" <<'PY'
import json, re, sys
tmp = sys.argv[1]

# -- BPE: a plain learner with the documented pre-token and tie rules
def cls(c):
    if 0x61 <= (c | 0x20) <= 0x7a or c >= 0x80: return 1
    if 0x30 <= c <= 0x39: return 2
    return 0 if c == 0x20 else 3
def chunks(b):
    i = 0
    while i < len(b):
        j = i
        if b[i] == 0x20:
            if i + 1 == len(b) or b[i + 1] == 0x20:
                yield b[i:i + 1]; i += 1; continue
            j = i + 1
        c = cls(b[j]); k = j + 1
        while k < len(b) and k - i < 256 and cls(b[k]) == c: k += 1
        yield b[i:k]; i = k
words = {}
for line in open(f"{tmp}/slice.txt", encoding="utf-8"):
    for ch in chunks(line.rstrip("\n").encode()):
        words[ch] = words.get(ch, 0) + 1
seqs = [[3 + x for x in w] for w in words]
freq = list(words.values())
merges = []
for step in range(300):
    counts = {}
    for s, f in zip(seqs, freq):
        for a, b in zip(s, s[1:]): counts[(a, b)] = counts.get((a, b), 0) + f
    if not counts: break
    best = min(counts, key=lambda p: (-counts[p], p[0], p[1]))
    if counts[best] < 2: break
    z = 259 + step; merges += list(best)
    for i, s in enumerate(seqs):
        o = []; k = 0
        while k < len(s):
            if k + 1 < len(s) and (s[k], s[k + 1]) == best: o.append(z); k += 2
            else: o.append(s[k]); k += 1
        seqs[i] = o
got = json.load(open(f"{tmp}/slice.json"))["merges"]
assert got == merges, "BPE merges differ from the Python learner at pair %d" % next(i // 2 for i in range(len(merges)) if got[i] != merges[i])
print(f"bpe: {len(merges) // 2} merges on a 6,000-sentence slice equal the Python learner's")

# -- 13a with Python's re and sacreBLEU's documented patterns
pats = [(re.compile(r'([\{-\~\[-\` -\&\(-\+\:-\@\/])'), r' \1 '), (re.compile(r'([^0-9])([\.,])'), r'\1 \2 '),
        (re.compile(r'([\.,])([^0-9])'), r' \1 \2'), (re.compile(r'([0-9])(-)'), r'\1 \2 ')]
def tok13a(line):
    line = line.rstrip()
    for a, b in (('<skipped>', ''), ('-\n', ''), ('\n', ' '), ('&quot;', '"'), ('&amp;', '&'), ('&lt;', '<'), ('&gt;', '>')):
        line = line.replace(a, b)
    line = f" {line} "
    for p, r in pats: line = p.sub(r, line)
    return " ".join(line.split())
src = open(f"{tmp}/all.txt", encoding="utf-8").read().split("\n")[:-1]
tok = open(f"{tmp}/all.tok", encoding="utf-8").read().split("\n")[:-1]
assert len(src) == len(tok)
bad = [i for i, (s, t) in enumerate(zip(src, tok)) if tok13a(s) != t]
assert not bad, "13a differs on %d lines, first: %r -> %r vs %r" % (len(bad), src[bad[0]], tok[bad[0]], tok13a(src[bad[0]]))
print(f"13a: {len(src)} verses (English and Spanish) tokenised as Python's re does")

# -- BLEU against NLTK on pre-tokenised test verses
from nltk.translate.bleu_score import corpus_bleu
hyp = [l.split() for l in open(f"{tmp}/hyp.tok", encoding="utf-8").read().split("\n")[:-1]]
ref = [[l.split()] for l in open(f"{tmp}/ref.tok", encoding="utf-8").read().split("\n")[:-1]]
nltk = 100 * corpus_bleu(ref, hyp)
ours_tok = float(open(f"{tmp}/bleu_tok.txt").read().split()[3])
ours_13a = float(open(f"{tmp}/bleu_raw.txt").read().split()[1])
assert abs(nltk - ours_tok) < 1e-9 and abs(nltk - ours_13a) < 1e-9, (nltk, ours_tok, ours_13a)
print(f"bleu: WEB against KJV on {len(hyp)} test verses: {ours_13a:.6f} (13a), NLTK on the same tokens {nltk:.6f}")
PY
echo "check-mt-corpus: all checks passed"
