"""PyTorch side of the inference-latency comparison (issue 22): the models of
`mnemo bench --infer` (bench/infer.c) in eager mode under torch.no_grad(),
batch 1, one token at a time, with the weights mnemo saved
(`--save-weights DIR`: DIR/NAME.safetensors, read here with json + struct
+ numpy). First it runs mnemo's probe (fresh state, tokens (5 k + 1) mod V
for k < 16) and compares the logits with the ones in mnemo's JSON line
(exit 1 if any differs by more than 1e-3); then it times tokens for about
--budget seconds and prints one JSON line per model. Run with /usr/bin/python3.
Usage: infer_torch.py --weights DIR --mnemo-json FILE [--only NAMES] [--threads N] [--budget S]
"""
import argparse, json, math, struct, sys, time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", f"{path}: {name} is {t['dtype']}, expected F32"
        a, b = t["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").reshape(t["shape"]).copy())
    return out


class LstmLM(nn.Module):
    def __init__(self, V=72, E=64, H=256):
        super().__init__()
        self.emb, self.rnn, self.head = nn.Embedding(V, E), nn.LSTM(E, H), nn.Linear(H, V)

    def reset(self):
        self.state = None

    def step(self, token):
        x = self.emb(torch.tensor([[token]]))
        y, self.state = self.rnn(x, self.state)
        return self.head(y)[0, 0]


class TransformerLM(nn.Module):
    """The modules of mnemo's mn_transformer_lm (nn.TransformerEncoderLayer blocks,
    pre-LN, GELU); a token is one position with a key/value cache per layer, the
    usual eager decoding loop (keys and values of the new position appended with
    torch.cat), starting a new sequence after T positions as bench/infer.c does."""
    def __init__(self, V=72, D=128, NH=4, L=2, FF=512, T=64):
        super().__init__()
        self.V, self.T, self.NH = V, T, NH
        self.tok_emb, self.pos_emb = nn.Embedding(V, D), nn.Embedding(T, D)
        self.blocks = nn.ModuleList(nn.TransformerEncoderLayer(D, NH, FF, dropout=0.0, activation="gelu",
                                                               batch_first=True, norm_first=True) for _ in range(L))
        self.ln_f, self.head = nn.LayerNorm(D), nn.Linear(D, V)

    def reset(self):
        self.pos, self.cache = 0, [None] * len(self.blocks)

    def attend(self, b, h, layer):
        a = b.self_attn
        B, _, D = h.shape
        dh = D // self.NH
        q, k, v = (t.view(B, 1, self.NH, dh).transpose(1, 2) for t in F.linear(h, a.in_proj_weight, a.in_proj_bias).chunk(3, -1))
        if self.cache[layer] is not None:
            k, v = torch.cat([self.cache[layer][0], k], 2), torch.cat([self.cache[layer][1], v], 2)
        self.cache[layer] = (k, v)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh), -1)
        return a.out_proj((att @ v).transpose(1, 2).reshape(B, 1, D))

    def step(self, token):
        if self.pos == self.T:
            self.reset()
        x = self.tok_emb(torch.tensor([[token]])) + self.pos_emb(torch.tensor([self.pos]))
        for layer, b in enumerate(self.blocks):
            x = x + self.attend(b, b.norm1(x), layer)
            x = x + b.linear2(F.gelu(b.linear1(b.norm2(x))))
        self.pos += 1
        return self.head(self.ln_f(x))[0, -1]


MODELS = {"lstm_lm": (LstmLM, ""), "transformer_lm": (TransformerLM, "lm.")}


def run(name, weights_dir, mnemo, threads, budget):
    cls, prefix = MODELS[name]
    model = cls().eval()
    sd = {k[len(prefix):]: v for k, v in load_safetensors(f"{weights_dir}/{name}.safetensors").items()}
    missing = model.load_state_dict(sd, strict=False)
    assert not missing.unexpected_keys and not missing.missing_keys, missing
    with torch.no_grad():
        model.reset()
        for k in range(16):
            logits = model.step((5 * k + 1) % 72)
        diff = float((logits - torch.tensor(mnemo["probe_logits"])).abs().max())
        times, n, start = [], 0, time.perf_counter()
        while n < 20 or time.perf_counter() - start < budget:
            a = time.perf_counter()
            model.step((3 * n + 2) % 72)
            times.append(1e3 * (time.perf_counter() - a))
            n += 1
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({"infer": name, "impl": "torch", "torch": torch.__version__, "threads": threads,
                      "token_ms_median": round(med, 4), "token_ms_min": round(times[0], 4),
                      "tokens_per_s": round(1e3 / med, 1), "n": n, "probe_max_abs_diff": diff}), flush=True)
    return diff


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--mnemo-json", required=True)
    ap.add_argument("--only", default="lstm_lm,transformer_lm")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget", type=float, default=3.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    lines = [json.loads(l) for l in open(a.mnemo_json) if l.strip()]
    ok = True
    for name in a.only.split(","):
        mnemo = [r for r in lines if r.get("infer") == name]
        if not mnemo:
            sys.exit(f"infer_torch.py: no mnemo line for {name} in {a.mnemo_json}")
        diff = run(name, a.weights, mnemo[-1], a.threads, a.budget)
        if not diff <= 1e-3:
            print(f"infer_torch.py: {name}: logits differ from mnemo's by {diff:.3g} (bound 1e-3)", file=sys.stderr)
            ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
