#!/usr/bin/python3
"""PyTorch counterparts of the `mnemo bench` workloads that
../shared/bench/torch_ref.py does not have (that file is outside the repo
and stays as it is): each entry of EXTRA builds (model, loss_fn, flops) as
torch_ref.build does, and the timing, the worker process and the JSON line
are torch_ref's own (imported from MNEMO_TORCH_REF, default
../shared/bench/torch_ref.py). scripts/bench-compare.sh calls it for the
workloads torch_ref.py lacks. Run with /usr/bin/python3 (Debian's torch).

  torch_workloads.py --only lstm_long,ner --threads 2 --budget 4 --jsonl OUT

Workloads (bench/workloads.c builds the mnemo side of each):
  lstm_long  the char LM (vocab 96, embed 64) with LSTM 512 over 512 steps,
             batch 64 (issue 17's long sequence), fused nn.LSTM as in lstm.
  ner        one training step of `mnemo train --model ner` at its default
             sizes on one fixed synthetic batch of its longest bucket: words
             [64, 16] of 10,000, characters [1024, 22] of 259, character CNN
             25 -> 30 filters of width 3 + tanh + max, BiLSTM 100 per
             direction (nn.LSTM over the padded batch), dropout 0.5, linear
             to 5 tags, the CRF's mean negative log-likelihood by the batched
             forward algorithm (scripts/ner-torch-bench.py's CRF), sentence
             lengths 64 - (3 b mod 32).
  seq2seq    a step of `mnemo train --model translate`'s default Transformer:
             nn.Transformer pre-LN, d 128, 4 heads, 2 + 2 layers, FF 512, ReLU,
             dropout 0.1, joint vocabulary 4000 with the generator tied to the
             shared embedding (scaled by sqrt(d), sinusoidal positions), label
             smoothing 0.1; 32 sentences of 64 tokens, source padding mask
             (no padding), causal target mask (scripts/mt_torch.py's model).
Entries are added, never changed in place: other workloads join EXTRA.
"""
import argparse, importlib.util, json, math, os, subprocess, sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.environ.get("MNEMO_TORCH_REF", os.path.join(HERE, "..", "..", "shared", "bench", "torch_ref.py"))


def load_ref():
    spec = importlib.util.spec_from_file_location("torch_ref", REF)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ref = load_ref()
linear_flops, total = ref.linear_flops, ref.total


# ---------------------------------------------------------------- lstm_long
def build_lstm_long():
    V, E, H, T, B = 96, 64, 512, 512, 64
    model = ref.CharRNN("lstm", V, E, H, 1)
    data = torch.randint(0, V, (T + 1, B))
    x, y = data[:-1], data[1:]
    flops = total(linear_flops(T * B, E, 4 * H), linear_flops(T * B, H, 4 * H), linear_flops(T * B, H, V))
    return model, lambda m: F.cross_entropy(m(x).reshape(-1, V), y.reshape(-1)), flops


# ---------------------------------------------------------------- ner
def load_ner_bench():
    """scripts/ner-torch-bench.py (its CRF: the one the ner speed comparison uses)."""
    spec = importlib.util.spec_from_file_location("ner_torch_bench", os.path.join(HERE, "ner-torch-bench.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


CRF = load_ner_bench().CRF


class NerTagger(nn.Module):
    def __init__(self, V, NC, K, word, cdim, filters, hidden, p):
        super().__init__()
        self.words, self.chars = nn.Embedding(V, word), nn.Embedding(NC, cdim)
        self.conv = nn.Conv1d(cdim, filters, 3)
        self.lstm = nn.LSTM(word + filters, hidden, bidirectional=True)
        self.drop, self.out, self.crf = nn.Dropout(p), nn.Linear(2 * hidden, K), CRF(K)

    def forward(self, w, c, y, mask):              # w [T, B], c [T * B, W]
        T, B = w.shape
        ch = torch.tanh(self.conv(self.chars(c).transpose(1, 2))).max(dim=2).values.view(T, B, -1)
        h, _ = self.lstm(self.drop(torch.cat([self.words(w), ch], dim=2)))
        return self.crf.nll(self.out(self.drop(h)), y, mask)


def build_ner():
    V, NC, E, C, Fl, H, K, T, B, W = 10000, 259, 100, 25, 30, 100, 5, 64, 16, 22
    N = T * B
    model = NerTagger(V, NC, K, E, C, Fl, H, 0.5)
    w, y = torch.randint(0, V, (T, B)), torch.randint(0, K, (T, B))
    c = torch.randint(0, NC, (N, W))
    lengths = torch.tensor([T - (3 * b) % (T // 2) for b in range(B)])
    mask = torch.arange(T)[:, None] < lengths[None, :]
    parts = [linear_flops(N * (W - 2), 3 * C, Fl)]
    parts += [linear_flops(N, E + Fl, 4 * H), linear_flops(N, H, 4 * H)] * 2
    parts += [linear_flops(N, 2 * H, K)]
    return model, lambda m: m(w, c, y, mask), total(*parts)


# ---------------------------------------------------------------- seq2seq
def sinusoid(n, d):
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(d)
    ang = pos / torch.pow(10000.0, (i - i % 2).double() / d)
    return torch.where(i % 2 == 1, torch.cos(ang), torch.sin(ang)).float()


class Seq2Seq(nn.Module):
    """scripts/mt_torch.py's model (the translation Transformer)."""
    def __init__(s, V, E, H, L, FF, dropout, max_len):
        super().__init__()
        s.E = E
        s.emb = nn.Embedding(V, E)
        nn.init.normal_(s.emb.weight, 0, E ** -0.5)
        s.tf = nn.Transformer(E, H, L, L, FF, dropout, batch_first=True, norm_first=True)
        s.bias = nn.Parameter(torch.zeros(V))
        s.drop = nn.Dropout(dropout)
        s.register_buffer("pe", sinusoid(max_len, E))

    def embed(s, x):
        return s.drop(s.emb(x) * math.sqrt(s.E) + s.pe[:x.shape[1]])

    def forward(s, src, pad, tgt):
        T = tgt.shape[1]
        mask = torch.triu(torch.full((T, T), float("-inf")), 1)
        mem = s.tf.encoder(s.embed(src), src_key_padding_mask=pad)
        h = s.tf.decoder(s.embed(tgt), mem, tgt_mask=mask, memory_key_padding_mask=pad)
        return F.linear(h, s.emb.weight, s.bias)


def build_seq2seq():
    V, E, H, L, FF, T, B = 4000, 128, 4, 2, 512, 64, 32
    n, dh = B * T, E // H
    model = Seq2Seq(V, E, H, L, FF, 0.1, 80)
    src, tin, tout = (torch.randint(0, V, (B, T)) for _ in range(3))
    pad = torch.zeros(B, T, dtype=torch.bool)
    att = 2 * B * H * T * dh * T
    enc = [linear_flops(n, E, 3 * E), linear_flops(n, E, E), linear_flops(n, E, FF), linear_flops(n, FF, E), (2 * att, 6 * att)]
    dec = enc + [linear_flops(n, E, E), linear_flops(n, E, 2 * E), linear_flops(n, E, E), (2 * att, 6 * att)]
    loss = lambda m: F.cross_entropy(m(src, pad, tin).reshape(-1, V), tout.reshape(-1), label_smoothing=0.1)
    return model, loss, total(*(enc * L + dec * L + [linear_flops(n, E, V)]))


EXTRA = {"lstm_long": build_lstm_long, "ner": build_ner, "seq2seq": build_seq2seq}


def build(name):
    return EXTRA[name]() if name in EXTRA else ref_build(name)


ref_build = ref.build
ref.build = build                                  # torch_ref.worker builds through this


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(EXTRA))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget", type=float, default=6.0, help="seconds of timed train steps")
    ap.add_argument("--jsonl", help="also write one line per workload with the keys of WORKLOADS.md")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(ref.worker(a.worker, a.threads, a.budget)))
        return
    rows = []
    for name in a.only.split(","):                 # each in its own process, as torch_ref.py does
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", name, "--threads", str(a.threads), "--budget", str(a.budget)]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        print(f"  {name}: {r['train_ms'][0]:.2f} ms/step, other load {r['other_load_cores']:.2f}, "
              f"loss {r['loss_first']:.3f} -> {r['loss_last']:.3f}", file=sys.stderr)
        rows.append(r)
    if a.jsonl:
        with open(a.jsonl, "w") as f:
            for r in rows:
                md, lo, hi = r["train_ms"]
                f.write(json.dumps(dict(
                    workload=r["workload"], threads=r["threads"], params=r["params"],
                    train_ms_median=md, train_ms_min=lo, train_ms_max=hi, fwd_ms_median=r["fwd_ms"],
                    gflops=r["gflops"], peak_rss_bytes=int(r["rss_peak_mib"] * 2**20))) + "\n")


if __name__ == "__main__":
    main()
