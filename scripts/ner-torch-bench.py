#!/usr/bin/python3
"""Training speed of a PyTorch BiLSTM-CRF against `mnemo train --model ner`
(docs/ner.md): the same model and sizes (word embedding 100, character CNN
25 -> 30 filters of width 3 + tanh + max, BiLSTM 100 per direction, dropout
0.5, linear to K, CRF with a batched forward algorithm), the same data (the
first LIMIT sentences of the Brown-derived train.conll, words seen once are
<unk>, sentences cut at 64 tokens, batches of 16 within length buckets of
8, 16, 32, 64 steps), Adam lr 0.002, clip 5. Prints sentences per second of
each epoch (training only, no evaluation). Run with /usr/bin/python3.

Usage: ner-torch-bench.py [--limit N] [--epochs N] [--threads N] [--train FILE]
"""
import argparse, collections, os, random, time
import torch
import torch.nn as nn


def read_conll(path, limit):
    sents, cur = [], []
    for line in open(path, encoding='utf-8'):
        f = line.split()
        if not f or f[0] == '-DOCSTART-':
            if cur: sents.append(cur); cur = []
            continue
        cur.append((f[0], f[-1]))
    if cur: sents.append(cur)
    return sents[:limit] if limit else sents


class CRF(nn.Module):
    def __init__(self, K):
        super().__init__()
        self.trans = nn.Parameter(torch.empty(K + 2, K).uniform_(-0.1, 0.1))

    def nll(self, em, tags, mask):                 # em [T, B, K], tags [T, B], mask [T, B] bool
        T, B, K = em.shape
        tr, start, end = self.trans[:K], self.trans[K], self.trans[K + 1]
        alpha = start + em[0]
        for t in range(1, T):
            nxt = torch.logsumexp(alpha[:, :, None] + tr[None] + em[t][:, None, :], dim=1)
            alpha = torch.where(mask[t][:, None], nxt, alpha)
        logz = torch.logsumexp(alpha + end, dim=1)
        ar = torch.arange(B)
        score = start[tags[0]] + em[0, ar, tags[0]]
        for t in range(1, T):
            score = score + (tr[tags[t - 1], tags[t]] + em[t, ar, tags[t]]) * mask[t]
        last = tags[mask.sum(0) - 1, ar]
        return (logz - score - end[last]).mean()


class Tagger(nn.Module):
    def __init__(self, V, K, word=100, cdim=25, filters=30, hidden=100, p=0.5):
        super().__init__()
        self.words = nn.Embedding(V, word)
        self.chars = nn.Embedding(259, cdim)
        self.conv = nn.Conv1d(cdim, filters, 3)
        self.lstm = nn.LSTM(word + filters, hidden, bidirectional=True)
        self.drop = nn.Dropout(p)
        self.out = nn.Linear(2 * hidden, K)
        self.crf = CRF(K)

    def forward(self, w, c, y, mask):              # w [T, B], c [T*B, W]
        T, B = w.shape
        ch = torch.tanh(self.conv(self.chars(c).transpose(1, 2))).max(dim=2).values.view(T, B, -1)
        x = self.drop(torch.cat([self.words(w), ch], dim=2))
        h, _ = self.lstm(x)
        return self.crf.nll(self.out(self.drop(h)), y, mask)


def main():
    ap = argparse.ArgumentParser()
    home = os.environ.get('MNEMO_DATA', os.path.expanduser('~/.cache/mnemo'))
    ap.add_argument('--train', default=os.path.join(home, 'brown-ner', 'train.conll'))
    ap.add_argument('--limit', type=int, default=5000)
    ap.add_argument('--epochs', type=int, default=2)
    ap.add_argument('--threads', type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    sents = read_conll(a.train, a.limit)
    counts = collections.Counter(w for s in sents for w, _ in s)
    vocab = {'<pad>': 0, '<unk>': 1}
    for w, n in sorted(counts.items(), key=lambda x: (-x[1], x[0])):
        if n >= 2: vocab[w] = len(vocab)
    tagset = {t: i for i, t in enumerate(sorted({t for s in sents for _, t in s}, key=lambda t: (t != 'O', t)))}
    pieces = [s[i:i + 64] for s in sents for i in range(0, len(s), 64)]
    buckets = [8, 16, 32, 64]
    W, B = 22, 16
    model = Tagger(len(vocab), len(tagset))
    opt = torch.optim.Adam(model.parameters(), lr=0.002)

    def batch(ps, T):
        w = torch.zeros(T, B, dtype=torch.long); y = torch.zeros(T, B, dtype=torch.long)
        c = torch.zeros(T * B, W, dtype=torch.long); m = torch.zeros(T, B, dtype=torch.bool)
        for b, p in enumerate(ps):
            for t, (word, tag) in enumerate(p):
                w[t, b] = vocab.get(word, 1); y[t, b] = tagset[tag]; m[t, b] = True
                ids = [1] + [x + 3 for x in word.encode()[:W - 2]] + [2]
                c[t * B + b, :len(ids)] = torch.tensor(ids)
        m[0] = True                                  # an empty slot scores its first step only
        return w, c, y, m

    print(f'torch {torch.__version__}, {a.threads} threads, {len(sents)} sentences, {len(pieces)} pieces, '
          f'{len(vocab)} words, {sum(p.numel() for p in model.parameters())} parameters')
    for epoch in range(a.epochs):
        random.seed(epoch)
        by = collections.defaultdict(list)
        for p in random.sample(pieces, len(pieces)):
            by[next(T for T in buckets if len(p) <= T)].append(p)
        batches = [(T, ps[i:i + B]) for T, ps in by.items() for i in range(0, len(ps), B)]
        random.shuffle(batches)
        data = [(batch(ps, T)) for T, ps in batches]  # prepared before the clock starts
        t0, total = time.time(), 0.0
        for w, c, y, m in data:
            loss = model(w, c, y, m)
            opt.zero_grad(); loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step(); total += loss.item()
        dt = time.time() - t0
        print(f'epoch {epoch + 1}: {len(data)} steps, train loss {total / len(data):.4f}, {dt:.1f} s '
              f'({len(data) * B / dt:.0f} sentences/s)', flush=True)


if __name__ == '__main__':
    main()
