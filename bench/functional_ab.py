"""Single ops through autograd, as a user benchmarks them: nnx.functional against torch.nn.functional, forward then
`.sum().backward()`, interleaved in blocks (as bench/network_ab.py), so a slow step between the kernels shows up
(Tensor arithmetic, a sum, the gradient of a sum, gradient accumulation): the kernels' own benchmarks
(bench/test_*.py) time the ops alone.

    python bench/functional_ab.py --threads 1 2 [--only conv relu layernorm] [--blocks 9]

Each call: forward, `.sum()`, backward. Activations are multiplied by 1.0 before the sum (a stand-in for the op that
follows them in a model; without it the sum's gradient reaches them as one broadcast value, which the `layernorm`,
`batchnorm` and `conv` rows cover). Inputs require gradients, which accumulate across calls (never zeroed), as in
repeated backward passes. Block i runs nnx, then PyTorch, each enough calls for about 20 ms; reported are the medians
of the blocks' per-call times and torch time / nnx time (above 1: nnx is faster). float32, random data.
"""
from __future__ import annotations

import argparse
import gc
import time

import numpy as np

# conv: (N, C, H, W, K, kernel, stride, padding, groups)
CONVS = [(32, 3, 32, 32, 16, 3, 1, 1, 1), (32, 16, 32, 32, 32, 3, 2, 1, 1), (64, 32, 16, 16, 64, 1, 1, 0, 1),
         (8, 64, 56, 56, 64, 3, 1, 1, 1), (16, 128, 14, 14, 256, 3, 2, 1, 1), (32, 32, 28, 28, 32, 3, 1, 1, 32),
         (4, 3, 224, 224, 64, 7, 2, 3, 1), (64, 1, 28, 28, 32, 5, 1, 2, 1), (32, 64, 8, 8, 128, 3, 1, 1, 1),
         (16, 96, 28, 28, 96, 5, 1, 2, 96), (32, 64, 16, 16, 64, 3, 1, 1, 4)]
POOLS = [((32, 64, 32, 32), 2, 2, 0), ((32, 64, 32, 32), 3, 2, 1), ((64, 16, 28, 28), 2, 2, 0), ((16, 128, 14, 14), 3, 1, 1)]
BATCHNORMS = [(64, 64, 32, 32), (32, 256, 8, 8), (128, 16, 28, 28), (256, 512), (64, 32, 56, 56), (8, 512, 4, 4)]
LAYERNORMS = [(4096, 64), (128, 768), (32, 128, 256), (1024, 1024), (16, 32)]
ACTIVATIONS = ["relu", "sigmoid", "tanh", "leaky_relu", "elu", "softmax", "log_softmax"]
ACTIVATION_SHAPES = [(256, 1000), (64, 64, 32, 32), (64, 10)]
LINEARS = [(64, 784, 512), (1, 512, 512), (1024, 256, 10), (256, 4096, 1024), (8, 128, 128), (512, 64, 64)]
LOSSES = [(64, 10), (256, 1000), (4096, 10), (128, 100)]
DROPOUTS = [(64, 4096), (32, 64, 32, 32)]
RECURRENT = [(64, 28, 28, 128), (16, 50, 64, 256)]  # batch, steps, inputs, hidden


def cases():
    """(name, make) pairs; make() returns the nnx call and the PyTorch call."""
    import nnx
    import nnx.functional as F
    import torch
    import torch.nn.functional as TF

    rng = np.random.default_rng(0)

    def arr(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    def pair(*arrays):
        return ([nnx.tensor(a, requires_grad=True) for a in arrays],
                [torch.tensor(a, requires_grad=True) for a in arrays])

    out = []
    for n, c, h, w, k, r, s, p, g in CONVS:
        def conv(n=n, c=c, h=h, w=w, k=k, r=r, s=s, p=p, g=g):
            (x, wt, b), (tx, tw, tb) = pair(arr(n, c, h, w), arr(k, c // g, r, r) * 0.1, arr(k))
            kw = dict(stride=s, padding=p) if g == 1 else dict(stride=s, padding=p, groups=g)
            return (lambda: F.conv2d(x, wt, b, **kw).sum().backward(),
                    lambda: TF.conv2d(tx, tw, tb, stride=s, padding=p, groups=g).sum().backward())
        out.append((f"conv {n}x{c}x{h}x{w} k{r} s{s} -> {k}" + (f" groups {g}" if g > 1 else ""), conv))
    for shape, r, s, p in POOLS:
        for kind in ("max", "avg"):
            def pool(shape=shape, r=r, s=s, p=p, kind=kind):
                (x,), (tx,) = pair(arr(*shape))
                f, tf = getattr(F, f"{kind}_pool2d"), getattr(TF, f"{kind}_pool2d")
                return lambda: f(x, r, s, p).sum().backward(), lambda: tf(tx, r, s, p).sum().backward()
            out.append((f"{kind}pool {'x'.join(map(str, shape))} k{r} s{s} p{p}", pool))
    for shape in BATCHNORMS:
        def batchnorm(shape=shape):
            c = shape[1]
            (x, w, b), (tx, tw, tb) = pair(arr(*shape), arr(c), arr(c))
            rm, rv, trm, trv = np.zeros(c, np.float32), np.ones(c, np.float32), torch.zeros(c), torch.ones(c)
            return (lambda: F.batch_norm(x, rm, rv, w, b, training=True).sum().backward(),
                    lambda: TF.batch_norm(tx, trm, trv, tw, tb, training=True).sum().backward())
        out.append((f"batchnorm {'x'.join(map(str, shape))}", batchnorm))
    for shape in LAYERNORMS:
        def layernorm(shape=shape):
            d = shape[-1]
            (x, w, b), (tx, tw, tb) = pair(arr(*shape), arr(d), arr(d))
            return (lambda: F.layer_norm(x, (d,), w, b).sum().backward(),
                    lambda: TF.layer_norm(tx, (d,), tw, tb).sum().backward())
        out.append((f"layernorm {'x'.join(map(str, shape))}", layernorm))
    for name in ACTIVATIONS:
        for shape in ACTIVATION_SHAPES:
            def activation(name=name, shape=shape):
                (x,), (tx,) = pair(arr(*shape))
                if name in ("softmax", "log_softmax"):
                    fa, fb = (lambda: getattr(F, name)(x, dim=-1)), (lambda: getattr(TF, name)(tx, dim=-1))
                else:
                    fa = lambda: getattr(F, name)(x)  # noqa: E731
                    fb = (lambda: getattr(torch, name)(tx)) if name in ("sigmoid", "tanh") else (lambda: getattr(TF, name)(tx))
                return lambda: (fa() * 1.0).sum().backward(), lambda: (fb() * 1.0).sum().backward()
            out.append((f"{name} {'x'.join(map(str, shape))}", activation))
    for b_, i, o in LINEARS:
        def linear(b_=b_, i=i, o=o):
            (x, w, b), (tx, tw, tb) = pair(arr(b_, i), arr(o, i) * 0.05, arr(o))
            return (lambda: F.linear(x, w, b).sum().backward(), lambda: TF.linear(tx, tw, tb).sum().backward())
        out.append((f"linear {b_}x{i} -> {o}", linear))
    for b_, c in LOSSES:
        def loss(b_=b_, c=c):
            (x,), (tx,) = pair(arr(b_, c))
            y = rng.integers(0, c, b_)
            ty = torch.from_numpy(y)
            return lambda: F.cross_entropy(x, y).backward(), lambda: TF.cross_entropy(tx, ty).backward()
        out.append((f"cross_entropy {b_}x{c}", loss))
    for shape in DROPOUTS:
        def dropout(shape=shape):
            (x,), (tx,) = pair(arr(*shape))
            return (lambda: F.dropout(x, 0.5, training=True).sum().backward(),
                    lambda: TF.dropout(tx, 0.5, training=True).sum().backward())
        out.append((f"dropout {'x'.join(map(str, shape))}", dropout))
    for n, t, i, h in RECURRENT:
        for kind in ("LSTM", "GRU"):
            def recurrent(n=n, t=t, i=i, h=h, kind=kind):
                nnx.manual_seed(0)
                m, tm = getattr(nnx.nn, kind)(i, h, batch_first=True), getattr(torch.nn, kind)(i, h, batch_first=True)
                x, tx = nnx.tensor(arr(n, t, i)), torch.from_numpy(arr(n, t, i))
                return lambda: m(x)[0].sum().backward(), lambda: tm(tx)[0].sum().backward()
            out.append((f"{kind.lower()} {n}x{t}x{i} -> {h}", recurrent))
    return out


def measure(a, b, blocks: int) -> tuple:
    for f in (a, b):  # warm-up: workspaces, plan caches, oneDNN primitives
        for _ in range(3):
            f()
    t = time.perf_counter()
    a()
    reps = max(1, int(0.02 / max(time.perf_counter() - t, 1e-6)))
    ta, tb = [], []
    gc.disable()
    try:
        for _ in range(blocks):
            for f, times in ((a, ta), (b, tb)):
                t = time.perf_counter()
                for _ in range(reps):
                    f()
                times.append((time.perf_counter() - t) / reps)
    finally:
        gc.enable()
    return float(np.median(ta)) * 1e3, float(np.median(tb)) * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--only", nargs="+", default=None, help="cases whose name contains any of these words")
    ap.add_argument("--blocks", type=int, default=9)
    args = ap.parse_args()
    import nnx
    import torch
    print(f"nnx.functional against torch.nn.functional {torch.__version__}, forward + .sum().backward(), "
          f"{args.blocks} interleaved blocks, medians (ISA {nnx.cpu_info()['active_isa']})")
    print("| case | threads | nnx ms | torch ms | torch/nnx |")
    print("|---|---|---|---|---|")
    for threads in args.threads:
        nnx.set_num_threads(threads)
        torch.set_num_threads(threads)
        for name, make in cases():
            if args.only and not any(w in name for w in args.only):
                continue
            ma, mb = measure(*make(), args.blocks)
            print(f"| {name} | {threads} | {ma:.3f} | {mb:.3f} | {mb / ma:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
