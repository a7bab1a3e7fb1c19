#!/usr/bin/env python3
"""Reads the JSON lines of scripts/dist-bench.sh and prints (markdown):
the throughput table; the allreduce times with the fit
  t(bytes) = latency + 2(N-1)/N x bytes / bandwidth      (N = 2 measured)
by least squares on the sizes 64 KiB..1 MiB (bandwidth; larger messages
were dominated by the machine's load when measured) and the smallest ones
(latency), per transport; and the projection of each workload's step time
and scaling efficiency on 2..64 machines at 10 and 100 Gbit/s, per-rank
batch fixed (weak scaling), with the communication the backward pass can
hide: the measured window from the first bucket's start to the end of the
backward pass. Ring latency is charged 2(N-1) times the fitted hop latency."""
import json
import re
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
head = rows[0]
runs = [r for r in rows if "tokens_per_s" in r]
ar = [r for r in rows if "allreduce_us" in r]

print(f"CPU: {head['cpu']} ({head['cpus']} cores); load average at the start {head['load']}; {head['steps']} steps per run\n")
print("| model | system | ranks x threads | variant | tokens/s | vs 1 x 1 | MPI per step |")
print("|---|---|---|---|---:|---:|---|")
base = {}
for r in runs:
    key = (r["model"], r["system"].split()[0])
    if r["ranks"] == 1 and r["threads"] == 1:
        base[key] = r["tokens_per_s"]
    b = base.get(key)
    speed = f"{r['tokens_per_s'] / b:.2f}x" if b else ""
    d = r.get("dist", "")
    m = re.search(r"([\d.]+) ms per step in MPI, ([\d.]+) ms of it waiting.*; ([\d.]+) ms from the first", d)
    mpi = f"{m.group(1)} ms ({m.group(2)} waiting; window {m.group(3)} ms)" if m else ""
    print(f"| {r['model']} | {r['system']} | {r['ranks']} x {r['threads']} | {r.get('variant', '')} | {r['tokens_per_s']:.0f} | {speed} | {mpi} |")


def fit(points):
    """latency (s) and bandwidth (bytes/s) of t = a + bytes / bw (N = 2: 2(N-1)/N = 1)."""
    big = [(b, t) for b, t in points if 65536 <= b <= 1 << 20]
    n = len(big)
    mb = sum(b for b, _ in big) / n
    mt = sum(t for _, t in big) / n
    slope = sum((b - mb) * (t - mt) for b, t in big) / sum((b - mb) ** 2 for b, _ in big)
    lat = min(t for b, t in points if b <= 64)
    return lat, 1.0 / slope


print("\n| transport | bytes | MPI_Allreduce us | MPI_Iallreduce + Wait us |")
print("|---|---:|---:|---:|")
fits = {}
for btl in sorted({r["btl"] for r in ar}):
    pts = [(r["bytes"], r["allreduce_us"] * 1e-6) for r in ar if r["btl"] == btl]
    for r in ar:
        if r["btl"] == btl:
            print(f"| {btl} | {r['bytes']} | {r['allreduce_us']} | {r['iallreduce_us']} |")
    fits[btl] = fit(pts)
print()
for btl, (lat, bw) in fits.items():
    print(f"- {btl}: latency {lat * 1e6:.1f} us, bandwidth {bw / 1e9:.2f} GB/s (fit on 64 KiB..1 MiB)")

# projection: per-rank compute = the 2-rank step time less its exposed MPI wait
lat_net = fits.get("self,tcp", next(iter(fits.values())))[0] if fits else 20e-6
print("\nProjection (weak scaling: per-rank batch as measured; hop latency %.0f us from the TCP fit):\n" % (lat_net * 1e6))
print("| model | gradient MB | compute ms | hideable ms | network | N=2 | 4 | 8 | 16 | 32 | 64 | 90% at 64 up to |")
print("|---|---:|---:|---:|---|---|---|---|---|---|---|---:|")
for model in ("lstm", "transformer"):
    cand = [r for r in runs if r["model"] == model and r["system"] == "mnemo" and r["ranks"] == 2 and "0.25 MB" in r.get("variant", "")
            and "levels" in r.get("variant", "")]
    params = {"lstm": 349951, "transformer": 425552}[model]          # `mnemo train` on the Bible text
    nbytes = params * 4
    if not cand:
        continue
    r = cand[0]
    batch = r["global_batch"]
    step = batch * 64 / r["tokens_per_s"]
    m = re.search(r"([\d.]+) ms per step in MPI, ([\d.]+) ms of it waiting.*; ([\d.]+) ms from the first", r.get("dist", ""))
    wait, window = (float(m.group(2)) * 1e-3, float(m.group(3)) * 1e-3) if m else (0.0, 0.0)
    compute = max(step - wait, 1e-6)
    for gbit in (10, 100):
        bw = gbit * 1e9 / 8
        cells = []
        for n in (2, 4, 8, 16, 32, 64):
            comm = 2 * (n - 1) * lat_net + 2 * (n - 1) / n * nbytes / bw
            exposed = max(0.0, comm - window)
            eff = compute / (compute + exposed)
            cells.append(f"{eff * 100:.0f}% (comm {comm * 1e3:.2f} ms)")
        # the gradient size at which 64 machines still reach 90% (comm hidden in the window plus 11% of compute)
        room = compute / 9 + window - 2 * 63 * lat_net
        limit = max(room, 0) / (2 * 63 / 64 / bw)
        print(f"| {model} | {nbytes / 1e6:.2f} | {compute * 1e3:.1f} | {window * 1e3:.1f} | {gbit} Gbit/s | " + " | ".join(cells)
              + f" | {limit / 1e6:.0f} MB |")
