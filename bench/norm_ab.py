"""Interleaved nnx / PyTorch timing of the normalization and dropout cases of bench/test_norm.py and
bench/test_dropout.py: the two run in alternating blocks so both see the same machine load (a shared
machine's load drifts over seconds), and medians over the blocks are reported with the ratio
torch / nnx and nnx's bandwidth as a fraction of bench/machine.json's copy bandwidth.

    python bench/norm_ab.py --threads 1 2 [--blocks 7] [--calls 10] [-k batch_norm]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import nnx  # noqa: E402
import test_norm  # noqa: E402
from conftest import rand  # noqa: E402
from nnx import ops  # noqa: E402

P, SEED = 0.5, 1234


def _dropout_cases(torch):
    out = []
    for size, shape in (("16M", (1 << 24,)), ("64x32x28x28", (64, 32, 28, 28))):
        x, dy = rand(shape, seed=1), rand(shape, seed=2)
        tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
        mask = torch.nn.functional.dropout(torch.ones_like(tx), P, True)
        # nnx as training runs it (bench/test_dropout.py's "nnx"): the forward saves the mask as bits, the
        # backward reads them.
        _, bits = ops.dropout(x, P, True, SEED, return_mask=True)
        out.append((f"dropout fwd {size}", lambda x=x: ops.dropout(x, P, True, SEED, return_mask=True),
                    lambda tx=tx: torch.nn.functional.dropout(tx, P, True), 2 * x.nbytes))
        out.append((f"dropout bwd {size}", lambda dy=dy, x=x, bits=bits: ops.dropout_backward(dy, x, P, True, SEED,
                                                                                            mask=bits),
                    lambda tdy=tdy, mask=mask: tdy * mask, 2 * x.nbytes))
    return out


def cases(torch):
    out = []
    for case in test_norm.CASES:
        fam, op, size = case
        fn, nbytes = test_norm._call(case, "nnx")
        tfn, _ = test_norm._call(case, "torch", torch)
        out.append((f"{'batch_norm' if fam == 'bn' else 'layer_norm'} {op} {size}", fn, tfn, nbytes))
    return out + _dropout_cases(torch)


def timed(fn, calls):
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t) / calls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--blocks", type=int, default=7)
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("-k", default="")
    args = ap.parse_args()
    import torch

    with open(os.path.join(HERE, "machine.json")) as f:
        copy_gbps = json.load(f)["copy_gbps"]
    for th in args.threads:
        nnx.set_num_threads(th)
        torch.set_num_threads(th)
        print(f"\n{th} thread(s); copy bandwidth {copy_gbps} GB/s (bench/machine.json)")
        print(f"{'case':38s} {'nnx ms':>8s} {'torch ms':>9s} {'torch/nnx':>9s} {'nnx GB/s':>9s} {'of copy':>8s}")
        for name, fn, tfn, nbytes in cases(torch):
            if args.k not in name:
                continue
            fn(), tfn()  # warm up (first-touch of outputs, workspaces)
            a, b = [], []
            for _ in range(args.blocks):
                a.append(timed(fn, args.calls))
                b.append(timed(tfn, args.calls))
            ta, tb = statistics.median(a), statistics.median(b)
            gbps = nbytes / ta / 1e9
            print(f"{name:38s} {ta * 1e3:8.3f} {tb * 1e3:9.3f} {tb / ta:9.2f} {gbps:9.1f} {gbps / copy_gbps:8.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
