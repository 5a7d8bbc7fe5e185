"""The conv layers of bench/network_ab.py's ResNet-20 and BatchNorm network, forward + backward, batch 64, at
1 thread, nnx against PyTorch interleaved (5 rounds of 4 calls each), timed in process CPU time, the steadier
figure on a shared machine. The backward computes dw and db, and dx except for a network's first layer.

    python bench/conv_layers_ab.py        # prints a markdown table
"""
from __future__ import annotations

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
}


def cpu_per_call(f, n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        f()
    return (time.process_time() - start) / n


def main():
    import nnx
    import torch
    from nnx import ops
    nnx.set_num_threads(1)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    print("| layer (batch 64) | algo | nnx ms | nnx GFLOP/s | torch ms | torch/nnx |\n|---|---|---|---|---|---|")
    for name, (xs, k, r, st, pad, need_dx) in LAYERS.items():
        x = rng.standard_normal(xs).astype(np.float32)
        w = (rng.standard_normal((k, xs[1], r, r)) * 0.1).astype(np.float32)
        b = np.zeros(k, np.float32)
        p = (xs[2] + 2 * pad - r) // st + 1
        dy = rng.standard_normal((xs[0], k, p, p)).astype(np.float32)

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
