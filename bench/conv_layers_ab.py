"""The conv layers of bench/network_ab.py's ResNet-20, BatchNorm network and LeNet-5 (batch 64) and the wider layers
of ImageNet-style networks (batch 16), forward + backward, at 1 thread, nnx against PyTorch interleaved (5 rounds
of 4 calls each), timed in process CPU time, the steadier figure on a shared machine. The backward computes dw
and db, and dx except for a network's first layer.

    python bench/conv_layers_ab.py        # prints a markdown table
    python bench/conv_layers_ab.py --passes [--isa avx2 avx512] [--layers 'resnet 16>16 32x32' ...]

--passes times the forward, the data gradient and the weight gradient (with db) separately, against
PyTorch's aten.convolution_backward with the matching output mask; with --isa each pass is timed under
every listed nnx ISA (nnx.set_isa), interleaved with PyTorch in the same rounds. GFLOP/s counts 2 flops per
multiply-add of the pass; "peak" divides by bench/machine.json's per-core float32 FMA peak.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

N = 64
# name: (N, C, H, W), K, R, stride, padding, needs dx
LAYERS = {
    "resnet c0 3>16 32x32": ((N, 3, 32, 32), 16, 3, 1, 1, False),
    "resnet 16>16 32x32": ((N, 16, 32, 32), 16, 3, 1, 1, True),
    "resnet 16>32 s2": ((N, 16, 32, 32), 32, 3, 2, 1, True),
    "resnet 16>32 1x1 s2": ((N, 16, 32, 32), 32, 1, 2, 0, True),
    "resnet 32>32 16x16": ((N, 32, 16, 16), 32, 3, 1, 1, True),
    "resnet 32>64 s2": ((N, 32, 16, 16), 64, 3, 2, 1, True),
    "resnet 64>64 8x8": ((N, 64, 8, 8), 64, 3, 1, 1, True),
    "bn-net c1 1>32 5x5": ((N, 1, 28, 28), 32, 5, 1, 2, False),
    "bn-net c2 32>64 5x5": ((N, 32, 14, 14), 64, 5, 1, 2, True),
    "lenet c1 1>6 5x5": ((N, 1, 28, 28), 6, 5, 1, 2, False),
    "lenet c2 6>16 5x5": ((N, 6, 14, 14), 16, 5, 1, 0, True),
    # Wider layers of ImageNet-style networks (ResNet-18/34's stem, downsampling and last stage), 16 images
    "wide stem 3>64 7x7 s2 N16": ((16, 3, 112, 112), 64, 7, 2, 3, False),
    "wide 128>256 s2 28x28 N16": ((16, 128, 28, 28), 256, 3, 2, 1, True),
    "wide 256>512 s2 14x14 N16": ((16, 256, 14, 14), 512, 3, 2, 1, True),
    "wide 512>512 7x7 N16": ((16, 512, 7, 7), 512, 3, 1, 1, True),
    # bench/test_conv.py's strided case (a ResNet-18 downsampling layer on CIFAR-sized maps)
    "strided 64>128 s2 32x32 N16": ((16, 64, 32, 32), 128, 3, 2, 1, True),
}


def cpu_per_call(f, n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        f()
    return (time.process_time() - start) / n


def _tensors(rng, xs, k, r, st, pad):
    x = rng.standard_normal(xs).astype(np.float32)
    w = (rng.standard_normal((k, xs[1], r, r)) * 0.1).astype(np.float32)
    b = np.zeros(k, np.float32)
    p = (xs[2] + 2 * pad - r) // st + 1
    dy = rng.standard_normal((xs[0], k, p, p)).astype(np.float32)
    return x, w, b, p, dy


def passes(names, isas, rounds, which=("fwd", "dx", "dw")):
    """Per pass (forward, dx, dw+db) CPU time of nnx under each ISA and of PyTorch, interleaved."""
    import nnx
    import torch
    from nnx import ops
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "machine.json")) as f:
        peak = json.load(f)["fma_gflops_per_core"]
    nnx.set_num_threads(1)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    cols = " | ".join(f"nnx {i} ms | GFLOP/s (peak)" for i in isas)
    print(f"| layer (64 images or N) | pass | algo | {cols} | torch ms | torch GFLOP/s | " +
          " | ".join(f"torch/{i}" for i in isas) + " |")
    print("|---|---|---|" + "---|---|" * len(isas) + "---|---|" + "---|" * len(isas))
    for name in names:
        xs, k, r, st, pad, need_dx = LAYERS[name]
        x, w, b, p, dy = _tensors(rng, xs, k, r, st, pad)
        tx, tw, tb, tdy = (torch.from_numpy(a) for a in (x, w, b, dy))
        flops = 2 * xs[0] * k * xs[1] * r * r * p * p
        cases = {"fwd": (lambda: ops.conv2d(x, w, b, st, pad),
                         lambda: torch.nn.functional.conv2d(tx, tw, tb, st, pad))}
        if need_dx:
            cases["dx"] = (lambda: ops.conv2d_backward(dy, x, w, b, st, pad, needs=(True, False, False)),
                           lambda: torch.ops.aten.convolution_backward(
                               tdy, tx, tw, [k], [st, st], [pad, pad], [1, 1], False, [0, 0], 1, [True, False, False]))
        cases["dw"] = (lambda: ops.conv2d_backward(dy, x, w, b, st, pad, needs=(False, True, True)),
                       lambda: torch.ops.aten.convolution_backward(
                           tdy, tx, tw, [k], [st, st], [pad, pad], [1, 1], False, [0, 0], 1, [False, True, True]))
        for pname, (fa, fb) in cases.items():
            if pname not in which:
                continue
            for i in isas:
                nnx.set_isa(i)
                fa()
            fb()
            a = {i: [] for i in isas}
            t = []
            for _ in range(rounds):
                for i in isas:
                    nnx.set_isa(i)
                    a[i].append(cpu_per_call(fa, 4))
                t.append(cpu_per_call(fb, 4))
            mt = float(np.median(t))
            ma = {i: float(np.median(v)) for i, v in a.items()}
            algo = ops.conv2d_algorithm(xs, w.shape, st, pad)
            cells = " | ".join(f"{ma[i] * 1e3:.2f} | {flops / ma[i] / 1e9:.0f} ({flops / ma[i] / 1e9 / peak:.0%})"
                               for i in isas)
            print(f"| {name} | {pname} | {algo} | {cells} | {mt * 1e3:.2f} | {flops / mt / 1e9:.0f} | " +
                  " | ".join(f"{mt / ma[i]:.2f}" for i in isas) + " |", flush=True)
    nnx.set_isa(isas[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passes", action="store_true")
    ap.add_argument("--isa", nargs="+", default=None, help="nnx ISAs to compare (with --passes)")
    ap.add_argument("--layers", nargs="+", default=list(LAYERS), choices=list(LAYERS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pass", dest="which", nargs="+", default=["fwd", "dx", "dw"], choices=["fwd", "dx", "dw"])
    args = ap.parse_args()
    if args.passes:
        import nnx
        passes(args.layers, args.isa or [nnx.cpu_info()["active_isa"]], args.rounds, args.which)
        return
    whole(args.layers)


def whole(names):
    import nnx
    import torch
    from nnx import ops
    nnx.set_num_threads(1)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    print("| layer (64 images or N) | algo | nnx ms | nnx GFLOP/s | torch ms | torch/nnx |\n|---|---|---|---|---|---|")
    for name in names:
        xs, k, r, st, pad, need_dx = LAYERS[name]
        x, w, b, p, dy = _tensors(rng, xs, k, r, st, pad)

        def nnx_call():
            ops.conv2d(x, w, b, st, pad)
            ops.conv2d_backward(dy, x, w, b, st, pad, needs=(need_dx, True, True))

        tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
        tx.requires_grad_(need_dx), tw.requires_grad_(True), tb.requires_grad_(True)
        tdy = torch.from_numpy(dy)

        def torch_call():
            torch.nn.functional.conv2d(tx, tw, tb, st, pad).backward(tdy)
            tx.grad = tw.grad = tb.grad = None

        flops = 2 * xs[0] * k * xs[1] * r * r * p * p * (3 if need_dx else 2)
        nnx_call(), torch_call()
        a, t = [], []
        for _ in range(5):
            a.append(cpu_per_call(nnx_call, 4))
            t.append(cpu_per_call(torch_call, 4))
        ma, mt = float(np.median(a)), float(np.median(t))
        algo = ops.conv2d_algorithm(xs, w.shape, st, pad)
        print(f"| {name} | {algo} | {ma * 1e3:.2f} | {flops / ma / 1e9:.0f} | {mt * 1e3:.2f} | {mt / ma:.2f} |")


if __name__ == "__main__":
    main()
