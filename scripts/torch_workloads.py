#!/usr/bin/python3
"""PyTorch counterparts of the `mnemo bench` workloads that ../shared/bench/
torch_ref.py does not have (issue 22: new workloads join the comparison):
the same shapes as bench/workloads.c, one full training step (forward, loss,
backward, Adam lr 1e-3) timed like torch_ref.py, one JSON line per workload
with the keys scripts/bench-compare.sh reads (WORKLOADS.md's).

  /usr/bin/python3 scripts/torch_workloads.py --only seq2seq --threads 2 --budget 4 --jsonl out.jsonl

Workloads (add entries to BUILD):
  seq2seq  a step of `mnemo train --model translate`'s default Transformer:
           nn.Transformer pre-LN, d 128, 4 heads, 2 + 2 layers, FF 512, ReLU,
           dropout 0.1, joint vocabulary 4000 with the generator tied to the
           shared embedding (scaled by sqrt(d), sinusoidal positions), label
           smoothing 0.1; 32 sentences of 64 tokens, source padding mask
           (no padding), causal target mask.
"""
import argparse, json, math, resource, statistics, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F


def lin(m, k, n):
    """(forward, train) FLOPs of an (m x k) @ (k x n) product with a trainable weight and input gradient."""
    f = 2 * m * k * n
    return f, 3 * f


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

    def loss(m):
        return F.cross_entropy(m(src, pad, tin).reshape(-1, V), tout.reshape(-1), label_smoothing=0.1)

    att = 2 * B * H * T * dh * T
    enc = [lin(n, E, 3 * E), lin(n, E, E), lin(n, E, FF), lin(n, FF, E), (2 * att, 6 * att)]
    dec = enc + [lin(n, E, E), lin(n, E, 2 * E), lin(n, E, E), (2 * att, 6 * att)]
    parts = enc * L + dec * L + [lin(n, E, V)]
    return model, loss, (sum(p[0] for p in parts), sum(p[1] for p in parts))


BUILD = {"seq2seq": build_seq2seq}


def timed(fn, budget, lo=5, hi=200):
    """torch_ref.py's rule: warm-up (3 calls, >= 1 s), then N calls filling about budget seconds."""
    t0, k = time.perf_counter(), 0
    while k < 3 or time.perf_counter() - t0 < 1.0:
        fn()
        k += 1
    n = max(lo, min(hi, int(budget / ((time.perf_counter() - t0) / k))))
    out = []
    for _ in range(n):
        s = time.perf_counter()
        fn()
        out.append(time.perf_counter() - s)
    return out


def run(name, threads, budget):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, loss_fn, (fwd_flops, train_flops) = BUILD[name]()
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        loss = loss_fn(model)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    c0 = time.process_time()
    train = timed(step, budget)
    cpu_per_step = (time.process_time() - c0) / (len(train) + 3)
    with torch.no_grad():
        fwd = timed(lambda: loss_fn(model), budget / 3)
    med = statistics.median
    return dict(workload=name, threads=torch.get_num_threads(), params=sum(p.numel() for p in model.parameters()),
                train_ms_median=1e3 * med(train), train_ms_min=1e3 * min(train), train_ms_max=1e3 * max(train),
                fwd_ms_median=1e3 * med(fwd), gflops=train_flops / med(train) / 1e9, n_train=len(train),
                cpu_ms_per_step=1e3 * cpu_per_step,
                peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(BUILD), help="comma-separated workloads")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget", type=float, default=4.0, help="seconds of timed train steps")
    ap.add_argument("--jsonl", help="also write one line per workload here")
    a = ap.parse_args()
    rows = []
    for name in a.only.split(","):
        if name not in BUILD:
            sys.exit(f"torch_workloads.py: unknown workload {name!r} (have {', '.join(BUILD)})")
        rows.append(run(name, a.threads, a.budget))
        r = rows[-1]
        print(f"{name}: {r['train_ms_median']:.2f} ms/step ({r['train_ms_min']:.2f}-{r['train_ms_max']:.2f}, n={r['n_train']}), "
              f"fwd {r['fwd_ms_median']:.2f} ms, {r['gflops']:.1f} GFLOP/s, {r['cpu_ms_per_step']:.1f} CPU ms/step", flush=True)
    if a.jsonl:
        with open(a.jsonl, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
