#!/usr/bin/env python3
"""Compares two per-step profiles of the same graph (mnemo bench --profile-steps),
e.g. 1 thread against 2 or before against after a change: kernel time per op
and output shape, summed over the steps, with the ratio A/B, slowest first.

Usage: scripts/profile-compare.py A.tsv B.tsv [ROWS]
  build/mnemo bench --workload lstm --threads 1 --profile-steps /tmp/a.tsv
  build/mnemo bench --workload lstm --threads 2 --profile-steps /tmp/b.tsv
  scripts/profile-compare.py /tmp/a.tsv /tmp/b.tsv
"""
import csv
import sys
from collections import defaultdict


def load(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    a, b = load(sys.argv[1]), load(sys.argv[2])
    rows = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    if [r["node"] for r in a] != [r["node"] for r in b]:
        sys.exit("profile-compare: the two files are not of the same compiled graph")
    agg = defaultdict(lambda: [0.0, 0.0, 0])
    for x, y in zip(a, b):
        key = (x["op"], x["shape"], "big" if x["big"] == "1" else "small", "split" if y["split"] == "1" else "")
        agg[key][0] += float(x["ms"])
        agg[key][1] += float(y["ms"])
        agg[key][2] += 1
    level = lambda r: sum({x["level"]: float(x["level_ms"]) for x in r}.values())
    print(f"run (sum of levels): A {level(a):.3f} ms, B {level(b):.3f} ms, A/B {level(a) / max(level(b), 1e-9):.2f}")
    print(f"{'op':<24} {'shape':<16} {'kind':<11} {'steps':>5} {'A ms':>9} {'B ms':>9} {'A/B':>6}")
    for (op, shape, big, split), (ta, tb, n) in sorted(agg.items(), key=lambda kv: -max(kv[1][0], kv[1][1]))[:rows]:
        print(f"{op:<24} {shape:<16} {big + (' ' + split if split else ''):<11} {n:>5} {ta:>9.3f} {tb:>9.3f} {ta / tb if tb > 0 else float('inf'):>6.2f}")


if __name__ == "__main__":
    main()
