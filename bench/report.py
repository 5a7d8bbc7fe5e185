"""Runs the benchmarks and prints one table per thread count: each case's median time for nnx and each
peer, the ratio peer time / nnx time (> 1 means nnx is faster), and nnx's GFLOP/s or GB/s, with the
fraction of the machine's peak when bench/machine.json (written by bench/machine_peak.py) exists.

    python bench/report.py                      # all benchmarks, 1 and 2 threads
    python bench/report.py -k gemm --threads 1  # a subset
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))


def run(threads: int, keyword: str | None, files: list[str], extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bench.json")
        cmd = [sys.executable, "-m", "pytest", *(files or [HERE]), "-q", "--benchmark-only",
               f"--benchmark-json={out}", f"--threads={threads}", "-p", "no:cacheprovider", *extra]
        if keyword:
            cmd += ["-k", keyword]
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        subprocess.run(cmd, check=False, env=env)
        if not os.path.exists(out):
            return {"benchmarks": []}
        with open(out) as f:
            return json.load(f)


def table(data: dict, peak: dict | None, threads: int) -> str:
    groups = defaultdict(dict)
    for b in data["benchmarks"]:
        info = b.get("extra_info", {})
        groups[b["group"]][info.get("impl", b["name"])] = (b["stats"]["median"], info)
    peers = sorted({impl for g in groups.values() for impl in g if impl != "nnx"})
    head = ["case", "nnx ms"] + [f"{p} ms" for p in peers] + [f"{p}/nnx" for p in peers] + ["nnx rate", "of peak"]
    rows = [head]
    for name in sorted(groups):
        g = groups[name]
        if "nnx" not in g:
            continue
        t, info = g["nnx"]
        row = [name, f"{t * 1e3:.3f}"]
        row += [f"{g[p][0] * 1e3:.3f}" if p in g else "-" for p in peers]
        row += [f"{g[p][0] / t:.2f}x" if p in g else "-" for p in peers]
        rate, frac = "-", "-"
        if info.get("flops"):
            gf = info["flops"] / t / 1e9
            rate = f"{gf:.1f} GFLOP/s"
            if peak and peak.get("fma_gflops_per_core"):
                key = "fma_gflops_per_core_f64" if "f64" in name else "fma_gflops_per_core"
                per = peak.get(key, peak["fma_gflops_per_core"])
                frac = f"{gf / (per * threads):.0%}"
        elif info.get("bytes"):
            gb = info["bytes"] / t / 1e9
            rate = f"{gb:.1f} GB/s"
            if peak and peak.get("copy_gbps"):
                frac = f"{gb / peak['copy_gbps']:.0%} of copy"
        row += [rate, frac]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [f"threads = {threads}"]
    for i, r in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", help="benchmark files (default: all of bench/)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("-k", dest="keyword", default=None, help="pytest -k expression")
    ap.add_argument("--json", default=None, help="also write the raw results here")
    args, extra = ap.parse_known_args(argv)
    peak = None
    peak_path = os.path.join(HERE, "machine.json")
    if os.path.exists(peak_path):
        with open(peak_path) as f:
            peak = json.load(f)
    all_data = {}
    for t in args.threads:
        data = run(t, args.keyword, args.files, extra)
        all_data[t] = data
        print(table(data, peak, t))
        print()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({str(k): v for k, v in all_data.items()}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
