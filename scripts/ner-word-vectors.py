#!/usr/bin/python3
"""Pre-trained word vectors for `mnemo train --model ner --vectors`, from
unlabelled text: count-based embeddings (positive pointwise mutual
information of words within WINDOW tokens of each other, context counts
smoothed by ^0.75, then a rank-DIM truncated SVD, U * sqrt(S)), the
method of Levy, Goldberg and Dagan (2015). The text is the first column of
CoNLL files (the tags are not read) or plain text, one sentence per line.
Writes word2vec text format ("N DIM" then "word v1 ... vDIM"). Needs numpy,
scipy and scikit-learn (python3-sklearn); run with /usr/bin/python3.

Usage: ner-word-vectors.py OUT.txt FILE... [--dim 100] [--window 2] [--words 20000] [--min-count 3]
"""
import argparse, collections
import numpy as np
import scipy.sparse as sp
from sklearn.utils.extmath import randomized_svd


def sentences(paths):
    for path in paths:
        cur = []
        for line in open(path, encoding='utf-8'):
            f = line.split()
            conll = len(f) >= 2 and not path.endswith('.txt')
            if not f or f[0] == '-DOCSTART-':
                if cur: yield cur
                cur = []
            elif conll:
                cur.append(f[0])
            else:
                yield f
        if cur: yield cur


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('out'); ap.add_argument('files', nargs='+')
    ap.add_argument('--dim', type=int, default=100); ap.add_argument('--window', type=int, default=2)
    ap.add_argument('--words', type=int, default=20000); ap.add_argument('--min-count', type=int, default=3)
    a = ap.parse_args()
    sents = list(sentences(a.files))
    counts = collections.Counter(w for s in sents for w in s)
    vocab = [w for w, c in counts.most_common(a.words) if c >= a.min_count]
    ids = {w: i for i, w in enumerate(vocab)}
    rows, cols = [], []
    for s in sents:
        x = [ids.get(w, -1) for w in s]
        for i, wi in enumerate(x):
            if wi < 0: continue
            for j in range(max(0, i - a.window), min(len(x), i + a.window + 1)):
                if j != i and x[j] >= 0:
                    rows.append(wi); cols.append(x[j])
    V = len(vocab)
    M = sp.coo_matrix((np.ones(len(rows), np.float64), (rows, cols)), shape=(V, V)).tocsr()
    M.sum_duplicates()
    total = M.sum()
    pw = np.asarray(M.sum(axis=1)).ravel() / total
    pc = np.asarray(M.sum(axis=0)).ravel() ** 0.75
    pc /= pc.sum()
    M = M.tocoo()
    pmi = np.log(M.data / total / (pw[M.row] * pc[M.col]))
    keep = pmi > 0
    P = sp.csr_matrix((pmi[keep], (M.row[keep], M.col[keep])), shape=(V, V))
    U, S, _ = randomized_svd(P, a.dim, n_iter=5, random_state=1)
    E = U * np.sqrt(S)
    E /= np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-8)    # unit rows, then scaled like a small init
    E *= 0.5
    with open(a.out, 'w', encoding='utf-8') as f:
        f.write(f'{V} {a.dim}\n')
        for w, v in zip(vocab, E):
            f.write(w + ' ' + ' '.join(f'{x:.5f}' for x in v) + '\n')
    print(f'{a.out}: {V} words x {a.dim} from {len(sents)} sentences, {sum(counts.values())} tokens; '
          f'{P.nnz} positive PMI cells (window {a.window})')


if __name__ == '__main__':
    main()
