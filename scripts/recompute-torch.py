#!/usr/bin/python3
"""Training under a memory budget, mnemo beside PyTorch (issue 17).

For each workload, in a fresh process each (peak RSS is per process):
PyTorch plain and with torch.utils.checkpoint (LSTM: segments of about
sqrt(T) time steps; Transformer: one checkpoint per block), and mnemo
without a budget and with --memory-budget FRACTION x its arena (and, when
no plan fits that, at the smallest budget the error names). Prints
one JSON line per run: peak RSS, median training-step time (forward,
backward, Adam).

  /usr/bin/python3 scripts/recompute-torch.py [MNEMO] [THREADS] [STEPS] [WORKLOADS]
workloads: lstm_long (T 512, hidden 512, batch 64, vocab 96), transformer
(../shared/bench/WORKLOADS.md); MNEMO defaults to build/mnemo.
"""
import json, math, os, re, resource, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
FRACTION = {"lstm_long": 0.25, "transformer": 1 / 3}


def torch_run(name, ckpt, threads, steps):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from torch.utils.checkpoint import checkpoint
    sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "bench"))
    sys.path.insert(0, "/work/shared/bench")
    import torch_ref
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    if name == "lstm_long":
        V, E, H, T, B = 96, 64, 512, 512, 64
        cells = torch_ref.LSTMCells(E, H)
        emb, head = nn.Embedding(V, E), nn.Linear(H, V)
        seg = max(1, round(math.sqrt(T)))

        def run_steps(gx_seg, h, c):
            out = []
            for gx_t in gx_seg.unbind(0):
                i, f, g, o = (gx_t + cells.hh(h)).chunk(4, 1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                out.append(h)
            return torch.stack(out), h, c

        def forward(x):
            gx = cells.ih(emb(x))
            h = c = gx.new_zeros(B, H)
            outs = []
            for s in range(0, T, seg):
                if ckpt:
                    o, h, c = checkpoint(run_steps, gx[s:s + seg], h, c, use_reentrant=False)
                else:
                    o, h, c = run_steps(gx[s:s + seg], h, c)
                outs.append(o)
            return head(torch.cat(outs))

        params = list(cells.parameters()) + list(emb.parameters()) + list(head.parameters())
        data = torch.randint(0, V, (T + 1, B))
        x, y = data[:-1], data[1:]
        loss_fn = lambda: F.cross_entropy(forward(x).reshape(-1, V), y.reshape(-1))
    else:
        model, loss_plain, _ = torch_ref.build(name)
        if ckpt:
            for b in model.blocks:
                b.forward = (lambda blk: (lambda x, mask: checkpoint(type(blk).forward, blk, x, mask, use_reentrant=False)))(b)
        params = list(model.parameters())
        loss_fn = lambda: loss_plain(model)
    opt = torch.optim.Adam(params, lr=1e-3)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        loss_fn().backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    times.sort()
    return {"who": "pytorch", "workload": name, "checkpoint": ckpt, "threads": threads,
            "train_ms_median": 1e3 * times[len(times) // 2],
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def mnemo_run(mnemo, name, threads, seconds, budget):
    cmd = [mnemo, "bench", "--json", "--threads", str(threads), "--budget", str(seconds), "--workload", name]
    if budget:
        cmd += ["--memory-budget", str(budget)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    line = next((l for l in p.stdout.splitlines() if l.startswith("{")), None)
    if not line:
        return {"who": "mnemo", "workload": name, "memory_budget": budget, "error": p.stderr.strip()[-300:]}
    r = json.loads(line)
    return {"who": "mnemo", "workload": name, "memory_budget": budget, "threads": threads, "arena_bytes": r["arena_bytes"],
            "train_ms_median": r["train_ms_median"], "peak_rss_bytes": r["peak_rss_bytes"]}


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--torch":
        print(json.dumps(torch_run(sys.argv[2], sys.argv[3] == "1", int(sys.argv[4]), int(sys.argv[5]))))
        return
    mnemo = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/mnemo")
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    names = (sys.argv[4] if len(sys.argv) > 4 else "lstm_long,transformer").split(",")
    for name in names:
        for ckpt in (0, 1):
            out = subprocess.run([sys.executable, __file__, "--torch", name, str(ckpt), str(threads), str(steps)],
                                 capture_output=True, text=True)
            print(out.stdout.strip() or json.dumps({"who": "pytorch", "workload": name, "error": out.stderr.strip()[-300:]}), flush=True)
        plain = mnemo_run(mnemo, name, threads, 1, 0)
        print(json.dumps(plain), flush=True)
        if "arena_bytes" in plain:
            r = mnemo_run(mnemo, name, threads, 1, int(plain["arena_bytes"] * FRACTION.get(name, 0.5)))
            print(json.dumps(r), flush=True)
            m = re.search(r"reaches is (\d+) bytes", r.get("error", ""))
            if m:       # the target fraction is out of reach: the smallest budget the pass names
                print(json.dumps(mnemo_run(mnemo, name, threads, 1, int(m.group(1)))), flush=True)


if __name__ == "__main__":
    main()
