#!/usr/bin/python3
"""Batch-1 translation latency of PyTorch on the weights of a mnemo
translation checkpoint (issue 22: one beam-4 sentence, eager mode,
torch.no_grad()), for scripts/mt-latency.sh to set beside `mnemo eval
--batch 1`. Two PyTorch decoders of the same model (pre-LN nn.Transformer,
tied and shared embeddings, as scripts/mt_torch.py):

  full    nn.Transformer's decoder over the whole prefix at every step
          (it has no incremental decoding);
  cached  a hand-written step that keeps every layer's self-attention keys
          and values and the memory's cross-attention keys and values
          (what mnemo's tools/translate.c does), written from the same
          weights; its output is checked against `full` on the first
          sentence.

Both run mnemo's beam search (K rows, the 2K best candidates, GNMT length
penalty, as mt_torch.py) one sentence at a time and print sentences per
second, output tokens per second and milliseconds per output token.

usage: mt_latency.py IDS CKPT [--limit N] [--beam K] [--threads T]
  IDS: `mnemo train --model translate --export-ids` of the checkpoint's BPE"""
import argparse, json, math, struct, time
import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("ids"); ap.add_argument("ckpt")
ap.add_argument("--limit", type=int, default=20); ap.add_argument("--beam", type=int, default=4)
ap.add_argument("--threads", type=int, default=2); ap.add_argument("--alpha", type=float, default=0.6)
ap.add_argument("--only", choices=["full", "cached", "both"], default="both")
a = ap.parse_args()
torch.set_num_threads(a.threads)
PAD, BOS, EOS = 0, 1, 2

raw = open(a.ckpt, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
meta = head.pop("__metadata__")
cfg = json.loads(meta["mnemo.translate"])
W = {}
for k, v in head.items():
    if k.startswith("mt.") and v["dtype"] == "F32":
        s, e = v["data_offsets"]
        W[k[3:]] = torch.frombuffer(bytearray(raw[8 + n + s:8 + n + e]), dtype=torch.float32).reshape(v["shape"])
E, H, V, ML = cfg["d_model"], cfg["heads"], cfg["vocab"], cfg["max_len"]
assert cfg.get("arch", "transformer") == "transformer" and cfg["tie"] and not cfg["post_ln"], "pre-LN tied Transformer only"


def sinusoid(n, d):
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(d)
    ang = pos / torch.pow(10000.0, (i - i % 2).double() / d)
    return torch.where(i % 2 == 1, torch.cos(ang), torch.sin(ang)).float()


tf = nn.Transformer(E, H, cfg["enc_layers"], cfg["dec_layers"], cfg["ff"], 0.0, batch_first=True, norm_first=True)
tf.load_state_dict({k[len("transformer."):]: v for k, v in W.items() if k.startswith("transformer.")})
tf.eval()
emb, bias, pe = W["tgt_emb.weight"], W["generator.bias"], sinusoid(ML, E)
scale = math.sqrt(E)


def embed(x, start=0):
    return emb[x] * scale + pe[start:start + x.shape[1]]


def mask_special(logp):
    logp[:, PAD] = -float("inf"); logp[:, BOS] = -float("inf")
    return logp


class Full:
    """nn.Transformer's decoder over the whole prefix each step."""
    def __init__(s, src):
        s.mem = tf.encoder(embed(src))
    def start(s, rows):
        s.memr = s.mem.expand(rows, -1, -1)
    def step(s, ys, parents):
        T = ys.shape[1]
        mask = torch.triu(torch.full((T, T), float("-inf")), 1)
        h = tf.decoder(embed(ys), s.memr, tgt_mask=mask)
        return mask_special(F.log_softmax(F.linear(h[:, -1], emb, bias), -1))


def attend(q, k, v):   # torch 1.13 has no F.scaled_dot_product_attention
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(E // H), -1) @ v


def heads(x):   # [N, T, E] -> [N, H, T, dh]
    return x.view(x.shape[0], x.shape[1], H, E // H).transpose(1, 2)


class Cached:
    """The same decoder, one position at a time over cached keys and values."""
    def __init__(s, src):
        mem = tf.encoder(embed(src))
        s.mk, s.mv = [], []
        for L in tf.decoder.layers:
            w, b = L.multihead_attn.in_proj_weight, L.multihead_attn.in_proj_bias
            s.mk.append(heads(F.linear(mem, w[E:2 * E], b[E:2 * E])))
            s.mv.append(heads(F.linear(mem, w[2 * E:], b[2 * E:])))
    def start(s, rows):
        s.mkr = [k.expand(rows, -1, -1, -1) for k in s.mk]
        s.mvr = [v.expand(rows, -1, -1, -1) for v in s.mv]
        s.k = [None] * len(s.mk); s.v = [None] * len(s.mk)
    def step(s, ys, parents):
        t = ys.shape[1] - 1
        x = embed(ys[:, -1:], t)
        for l, L in enumerate(tf.decoder.layers):
            if s.k[l] is not None and parents is not None:
                s.k[l] = s.k[l].index_select(0, parents); s.v[l] = s.v[l].index_select(0, parents)
            a_ = L.self_attn
            q, k, v = F.linear(L.norm1(x), a_.in_proj_weight, a_.in_proj_bias).chunk(3, -1)
            q, k, v = heads(q), heads(k), heads(v)
            s.k[l] = k if s.k[l] is None else torch.cat([s.k[l], k], 2)
            s.v[l] = v if s.v[l] is None else torch.cat([s.v[l], v], 2)
            o = attend(q, s.k[l], s.v[l])
            x = x + a_.out_proj(o.transpose(1, 2).reshape(x.shape[0], 1, E))
            c = L.multihead_attn
            q = heads(F.linear(L.norm2(x), c.in_proj_weight[:E], c.in_proj_bias[:E]))
            o = attend(q, s.mkr[l], s.mvr[l])
            x = x + c.out_proj(o.transpose(1, 2).reshape(x.shape[0], 1, E))
            x = x + L.linear2(F.relu(L.linear1(L.norm3(x))))
        h = tf.decoder.norm(x)
        return mask_special(F.log_softmax(F.linear(h[:, -1], emb, bias), -1))


def lp(n): return ((5.0 + n) / 6.0) ** a.alpha


def beam(dec, src, K):
    """mnemo's beam rules (tools/translate.c, as mt_torch.py) for one sentence."""
    d = dec(src)
    T = ML - 1
    ys = torch.full((1, 1), BOS, dtype=torch.long)
    score = torch.zeros(1)
    best, nfin, parents, steps = (-float("inf"), []), 0, None, 0
    d.start(1)
    for t in range(T):
        logp = d.step(ys, parents)
        steps += 1
        cand = (score[:, None] + logp).view(-1)
        val, idx = cand.topk(min(2 * K, cand.numel()))
        rows, toks, new = [], [], []
        for v, x in zip(val.tolist(), idx.tolist()):
            if len(rows) == K or v == -float("inf"): break
            row, tok = x // V, x % V
            if tok == EOS or t == T - 1:
                nfin += 1
                norm = v / lp(t + 1)
                if norm > best[0]: best = (norm, ys[row, 1:].tolist() + ([] if tok == EOS else [tok]))
                continue
            rows.append(row); toks.append(tok); new.append(v)
        if nfin >= K or not rows or t == T - 1: break
        if len(rows) != ys.shape[0]: d.start(len(rows))
        parents = torch.tensor(rows)
        ys = torch.cat([ys[parents], torch.tensor(toks)[:, None]], 1)
        score = torch.tensor(new)
    return best[1], steps


test = []
for line in open(a.ids, encoding="utf-8"):
    split, s, t, ref = line.rstrip("\n").split("\t")
    if split == "test": test.append([int(x) for x in s.split()] + [EOS])
test = test[:a.limit]

with torch.no_grad():
    if a.only == "both":   # the cached step computes what nn.Transformer computes
        src = torch.tensor([test[0]])
        ys = torch.tensor([[BOS] + test[0][:5]])
        f, c = Full(src), Cached(src)
        f.start(1); c.start(1)
        ref = f.step(ys, None)
        for t in range(1, ys.shape[1] + 1): got = c.step(ys[:, :t], None)
        err = (got - ref)[:, 3:].abs().max().item()
        print(f"cached step vs nn.Transformer: max |log p difference| {err:.2e}")
        assert err < 1e-3, err
    for name, dec in (("full", Full), ("cached", Cached)):
        if a.only not in ("both", name): continue
        beam(dec, torch.tensor([test[0]]), a.beam)   # warm-up
        t0 = time.perf_counter(); c0 = time.process_time(); toks = 0; steps = 0
        for s in test:
            out, k = beam(dec, torch.tensor([s]), a.beam)
            toks += len(out); steps += k
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        print(f"torch {name} beam {a.beam}: {len(test)} sentences in {dt:.2f} s ({dc:.2f} CPU s), {len(test) / dt:.3f} sentences/s, {dc / len(test):.2f} CPU s per sentence, "
              f"{toks} output tokens ({steps} decoder steps), {1e3 * dt / steps:.2f} ms per step", flush=True)
