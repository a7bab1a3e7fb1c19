#!/usr/bin/python3
"""The PyTorch side of scripts/mt-compare.sh: the same translation model as
`mnemo train --model translate` (nn.Transformer, pre-LN, ReLU, embeddings
tied and shared and scaled by sqrt(d_model), sinusoidal positions), trained
on the same BPE ids (`mnemo train --export-ids`) with the same batches
(length buckets of 16, at most --batch padded tokens), AdamW (0.9, 0.98,
1e-9), warmup then inverse square root, clipping and label smoothing, for
the same wall-clock time. Prints training tokens per second and writes
greedy translations of the test split (decoded with the checkpoint's BPE)
for BLEU by the same code as mnemo's (tests/test_mt_data --bleu), and with
--beam K also beam-search translations (mnemo's rules: 2K candidates, GNMT
length penalty) to HYP_OUT.beamK, with sentences per second for each.

usage: mt_torch.py IDS CKPT HYP_OUT --time S [--d-model ...] (see --help)"""
import argparse, json, math, random, struct, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("ids"); ap.add_argument("ckpt"); ap.add_argument("hyp")
ap.add_argument("--time", type=float, default=600); ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--d-model", type=int, default=128); ap.add_argument("--heads", type=int, default=4)
ap.add_argument("--layers", type=int, default=2); ap.add_argument("--ff", type=int, default=512)
ap.add_argument("--max-len", type=int, default=80); ap.add_argument("--batch", type=int, default=2048)
ap.add_argument("--lr", type=float, default=2e-3); ap.add_argument("--warmup", type=int, default=400)
ap.add_argument("--dropout", type=float, default=0.1); ap.add_argument("--label-smoothing", type=float, default=0.1)
ap.add_argument("--clip", type=float, default=1.0); ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--steps", type=int, default=0, help="stop after this many steps (0: --time only)")
ap.add_argument("--no-decode", action="store_true", help="skip the test translations (step timing only)")
ap.add_argument("--beam", type=int, default=0, help="also decode the test split with beam search of this size into HYP_OUT.beamK")
ap.add_argument("--test-limit", type=int, default=0, help="translate only the first N test pairs (0: all)")
ap.add_argument("--alpha", type=float, default=0.6, help="GNMT length penalty exponent of the beam search")
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
PAD, BOS, EOS = 0, 1, 2

# the checkpoint's BPE: ids 3 + b are bytes, merge i makes id 259 + i
b = open(a.ckpt, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
meta = json.loads(b[8:8 + n])["__metadata__"]
bpe = json.loads(meta["mnemo.bpe"])
V = bpe["vocab"]
tok = [b""] * 3 + [bytes([i]) for i in range(256)]
m = bpe["merges"]
for i in range(0, len(m), 2): tok.append(tok[m[i]] + tok[m[i + 1]])
assert len(tok) == V, (len(tok), V)
def decode(ids): return b"".join(tok[i] for i in ids).decode("utf-8", errors="replace")

data = {"train": [], "valid": [], "test": []}
for line in open(a.ids, encoding="utf-8"):
    split, s, t, ref = line.rstrip("\n").split("\t")
    data[split].append(([int(x) for x in s.split()], [int(x) for x in t.split()] if t else [], ref))

def sinusoid(n, d):
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(d)
    ang = pos / torch.pow(10000.0, (i - i % 2).double() / d)
    return torch.where(i % 2 == 1, torch.cos(ang), torch.sin(ang)).float()

class Model(nn.Module):
    def __init__(s):
        super().__init__()
        E = a.d_model
        s.emb = nn.Embedding(V, E)
        nn.init.normal_(s.emb.weight, 0, E ** -0.5)
        s.tf = nn.Transformer(E, a.heads, a.layers, a.layers, a.ff, a.dropout, batch_first=True, norm_first=True)
        s.bias = nn.Parameter(torch.zeros(V))
        s.register_buffer("pe", sinusoid(a.max_len, E))
        s.drop = nn.Dropout(a.dropout)   # mnemo's seq2seq drops out the embedded input too (models/seq2seq.c embed_seq)
    def embed(s, x): return s.drop(s.emb(x) * math.sqrt(a.d_model) + s.pe[:x.shape[1]])
    def encode(s, src, pad): return s.tf.encoder(s.embed(src), src_key_padding_mask=pad)
    def decode(s, tgt, mem, pad):
        T = tgt.shape[1]
        mask = torch.triu(torch.full((T, T), float("-inf")), 1)
        h = s.tf.decoder(s.embed(tgt), mem, tgt_mask=mask, memory_key_padding_mask=pad)
        return F.linear(h, s.emb.weight, s.bias)

def bucket(p):
    n = max(len(p[0]), len(p[1]) + 1)
    return min((n + 15) // 16 * 16, a.max_len)

def batches(items, seed):
    r = random.Random(seed)
    order = list(range(len(items))); r.shuffle(order)
    chunk = 64 * (a.batch // 16 + 1)
    out = []
    for i in range(0, len(order), chunk):
        part = sorted(order[i:i + chunk], key=lambda k: (bucket(items[k]), k))
        j = 0
        while j < len(part):
            k = j; L = 0
            while k < len(part):
                l = bucket(items[part[k]])
                if k > j and (k - j + 1) * l > a.batch: break
                L = l; k += 1
            out.append((part[j:k], L)); j = k
    r.shuffle(out)
    return out

def tensors(items, idx, L):
    B = a.batch // L
    src = torch.zeros(B, L, dtype=torch.long); tin = torch.zeros(B, L, dtype=torch.long)
    tout = torch.full((B, L), -100, dtype=torch.long)
    for r, k in enumerate(idx):
        s, t, _ = items[k]
        src[r, :len(s)] = torch.tensor(s)
        tin[r, 0] = BOS; tin[r, 1:len(t) + 1] = torch.tensor(t, dtype=torch.long)
        tout[r, :len(t)] = torch.tensor(t, dtype=torch.long); tout[r, len(t)] = EOS
    pad = src == PAD
    pad[len(idx):, 0] = False   # rows past the batch's pairs (targets all ignored): one unmasked key, else
    return src, pad, tin, tout  # softmax over an all -inf row gives NaN and its gradient poisons the weights

model = Model()
opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0)
def lr_at(step):
    s, w = step + 1, max(a.warmup, 1)
    return a.lr * (s / w if s < w else math.sqrt(w / s))

t0 = time.time(); step = 0; tokens = 0; ema = None; epoch = 0; stop = False
cpu_steps = 0.0   # CPU seconds inside training steps (as mnemo's "training:" line)
model.train()
while not stop:
    for idx, L in batches(data["train"], a.seed + epoch):
        c0 = time.process_time()
        src, pad, tin, tout = tensors(data["train"], idx, L)
        for g in opt.param_groups: g["lr"] = lr_at(step)
        logits = model.decode(tin, model.encode(src, pad), pad)
        loss = F.cross_entropy(logits.reshape(-1, V), tout.reshape(-1), ignore_index=-100, label_smoothing=a.label_smoothing)
        opt.zero_grad(); loss.backward()
        if a.clip > 0: torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        cpu_steps += time.process_time() - c0
        tokens += sum(len(data["train"][k][0]) + len(data["train"][k][1]) + 1 for k in idx)
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        step += 1
        if step % 50 == 0: print(f"torch step {step}: loss {ema:.3f}, {tokens / (time.time() - t0):.0f} tok/s", flush=True)
        if time.time() - t0 >= a.time or (a.steps and step >= a.steps): stop = True; break
    epoch += 1
train_s = time.time() - t0
cpu = time.process_time()
ntok = tokens
print(f"training: {step} steps, {ntok} tokens, {cpu_steps:.2f} CPU s in steps ({1e3 * cpu_steps / max(step, 1):.1f} CPU ms/step, "
      f"{ntok / max(cpu_steps, 1e-9):.0f} tok per CPU-second)", flush=True)
print(f"torch: {step} steps in {train_s:.0f} s, {tokens / train_s:.0f} tok/s, {tokens / cpu:.0f} tok per CPU-second, loss {ema:.3f}", flush=True)
if a.no_decode: sys.exit(0)

# greedy translation of the test split (full recomputation: nn.Transformer has no cache)
model.eval()
test = data["test"][:a.test_limit] if a.test_limit else data["test"]

def source_batch(part):
    S = max(len(p[0]) for p in part)
    src = torch.zeros(len(part), S, dtype=torch.long)
    for r, p in enumerate(part): src[r, :len(p[0])] = torch.tensor(p[0])
    return src, src == PAD

def next_logp(ys, mem, pad):
    logp = F.log_softmax(model.decode(ys, mem, pad)[:, -1], -1)
    logp[:, PAD] = -float("inf"); logp[:, BOS] = -float("inf")
    return logp

def greedy(part):
    src, pad = source_batch(part)
    mem = model.encode(src, pad)
    ys = torch.full((len(part), 1), BOS, dtype=torch.long)
    done = torch.zeros(len(part), dtype=torch.bool)
    for t in range(a.max_len - 1):
        nxt = next_logp(ys, mem, pad).argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
        ys = torch.cat([ys, nxt[:, None]], 1)
        done |= nxt == EOS
        if done.all(): break
    outs = []
    for r in range(len(part)):
        out = []
        for x in ys[r, 1:].tolist():
            if x in (EOS, PAD): break
            out.append(x)
        outs.append(out)
    return outs

def lp(n): return ((5.0 + n) / 6.0) ** a.alpha

def beam(part, K):
    """mnemo's rules (tools/translate.c): K rows per sentence (row 0 alone at
    the start), the 2K best candidates in order: one ending in </s> (or any at
    the last step) finishes with score / lp(length incl. </s>), the others
    fill the K rows; a sentence is done when K have finished."""
    n = len(part)
    src, pad = source_batch(part)
    mem = model.encode(src, pad).repeat_interleave(K, 0)
    pad = pad.repeat_interleave(K, 0)
    ys = torch.full((n * K, 1), BOS, dtype=torch.long)
    score = torch.full((n, K), -float("inf")); score[:, 0] = 0
    best = [(-float("inf"), [])] * n; nfin = [0] * n; done = [False] * n
    T = a.max_len - 1
    for t in range(T):
        if all(done): break
        cand = (score[:, :, None] + next_logp(ys, mem, pad).view(n, K, V)).view(n, K * V)
        val, idx = cand.topk(2 * K, -1)
        rows = list(range(n * K)); toks = [PAD] * (n * K); new = torch.full((n, K), -float("inf"))
        for i in range(n):
            if done[i]: continue
            live = 0
            for v, x in zip(val[i].tolist(), idx[i].tolist()):
                if live == K or v == -float("inf"): break
                row, tok = i * K + x // V, x % V
                if tok == EOS or t == T - 1:
                    nfin[i] += 1
                    norm = v / lp(t + 1)
                    if norm > best[i][0]: best[i] = (norm, ys[row, 1:].tolist() + ([] if tok == EOS else [tok]))
                    continue
                rows[i * K + live] = row; toks[i * K + live] = tok; new[i, live] = v; live += 1
            if nfin[i] >= K or live == 0 or t == T - 1: done[i] = True
        score = new
        ys = torch.cat([ys[torch.tensor(rows)], torch.tensor(toks)[:, None]], 1)
    return [b[1] for b in best]

def decode_test(fn, path, name):
    hyps = []
    t1 = time.time()
    with torch.no_grad():
        for i in range(0, len(test), 16):
            hyps += [decode(x) for x in fn(test[i:i + 16])]
    dec_s = time.time() - t1
    with open(path, "w", encoding="utf-8") as f:
        for h in hyps: f.write(h.replace("\n", " ") + "\n")
    print(f"torch {name}: {len(test)} test sentences in {dec_s:.1f} s, {len(test) / dec_s:.2f} sentences/s", flush=True)

decode_test(greedy, a.hyp, "greedy")
if a.beam > 1: decode_test(lambda part: beam(part, a.beam), f"{a.hyp}.beam{a.beam}", f"beam {a.beam}")
