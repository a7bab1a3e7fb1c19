#!/usr/bin/python3
"""PyTorch reference for scripts/dist-bench.sh: the lstm and transformer
models of `mnemo train` (their default sizes) trained with Adam on random
tokens, in one process or under DistributedDataParallel (gloo) on several
processes of one thread each. Prints one JSON line: tokens per second over
the global batch, measured after two warm-up steps.

usage: dist_torch.py MODEL PROCS THREADS STEPS VOCAB"""
import json
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F

SIZES = {"lstm": dict(batch=32, seq=64), "transformer": dict(batch=16, seq=64)}


class LstmLM(nn.Module):        # emb 64 -> LSTM 256 -> head, (T, B) layout
    def __init__(self, vocab):
        super().__init__()
        self.emb = nn.Embedding(vocab, 64)
        self.rnn = nn.LSTM(64, 256)
        self.head = nn.Linear(256, vocab)

    def forward(self, x):
        return self.head(self.rnn(self.emb(x))[0])


class GptLM(nn.Module):         # d 128, 4 heads, 2 pre-LN GELU blocks, ff 512, learned positions
    def __init__(self, vocab, seq):
        super().__init__()
        self.tok = nn.Embedding(vocab, 128)
        self.pos = nn.Parameter(torch.zeros(seq, 128))
        layer = nn.TransformerEncoderLayer(128, 4, 512, dropout=0.0, activation="gelu", norm_first=True, batch_first=True)
        self.blocks = nn.TransformerEncoder(layer, 2)
        self.ln = nn.LayerNorm(128)
        self.head = nn.Linear(128, vocab)
        self.register_buffer("mask", torch.triu(torch.full((seq, seq), float("-inf")), 1))

    def forward(self, x):
        return self.head(self.ln(self.blocks(self.tok(x) + self.pos, mask=self.mask)))


def worker(rank, model_name, procs, threads, steps, vocab, out):
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    if procs > 1:
        dist.init_process_group("gloo", rank=rank, world_size=procs)
    s = SIZES[model_name]
    B, T = s["batch"] // procs, s["seq"]
    model = LstmLM(vocab) if model_name == "lstm" else GptLM(vocab, T)
    if procs > 1:
        model = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    shape = (T, B) if model_name == "lstm" else (B, T)
    x, y = torch.randint(0, vocab, shape), torch.randint(0, vocab, shape)

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x).reshape(-1, vocab), y.reshape(-1)).backward()
        opt.step()

    for _ in range(2):
        step()
    if procs > 1:
        dist.barrier()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if procs > 1:
        dist.barrier()
    dt = time.perf_counter() - t0
    if rank == 0:
        out.put(dt)
    if procs > 1:
        dist.destroy_process_group()


def main():
    model_name, procs, threads, steps, vocab = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    if procs > 1:
        mp.spawn(worker, args=(model_name, procs, threads, steps, vocab, q), nprocs=procs)
    else:
        worker(0, model_name, 1, threads, steps, vocab, q)
    dt = q.get()
    s = SIZES[model_name]
    print(json.dumps({"system": "pytorch " + torch.__version__ + (" DDP gloo" if procs > 1 else ""), "model": model_name,
                      "ranks": procs, "threads": threads, "global_batch": s["batch"],
                      "tokens_per_s": round(s["batch"] * s["seq"] * steps / dt, 1), "step_ms": round(dt / steps * 1e3, 2)}))


if __name__ == "__main__":
    main()
