"""Convolution benchmarks: one training step of a conv layer, forward then backward, nnx against PyTorch
CPU (oneDNN) and the NumPy reference, on the same float32 arrays and thread count.

    python -m pytest bench/test_conv.py --threads 1 --benchmark-only
    python bench/report.py bench/test_conv.py --threads 1 2

Each case runs conv2d forward (with bias) and then the backward a training step needs: dx, dw and db,
except LeNet's first layer, whose input needs no gradient (dx skipped, as a framework would). PyTorch runs
torch.nn.functional.conv2d and torch.ops.aten.convolution_backward with the same output mask.

flops = 3 * 2*N*K*(C/groups)*R*S*P*Q: the forward and the two backward products (dx and dw), each of the
forward's size (for LeNet conv1 dx is skipped but still counted, so its GFLOP/s compare across impls only).
It counts the direct convolution's multiply-adds whatever an implementation does: Winograd layers (nnx's
"winograd", and oneDNN where it chooses it) do fewer, so their rate is an effective one and can exceed the
machine's peak.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import rand, record
from nnx import ops, reference

# name: (N, C, H, W), K, R, stride, padding, groups, needs dx
SHAPES = {
    "lenet-conv1": ((64, 1, 28, 28), 6, 5, 1, 2, 1, False),
    "lenet-conv2": ((64, 6, 14, 14), 16, 5, 1, 0, 1, True),
    "convnet-5x5": ((64, 32, 14, 14), 64, 5, 1, 2, 1, True),  # the convnet's and BatchNorm net's conv2
    "resnet-3x3": ((16, 64, 32, 32), 64, 3, 1, 1, 1, True),
    "strided-3x3": ((16, 64, 32, 32), 128, 3, 2, 1, 1, True),
    "pointwise-1x1": ((16, 256, 16, 16), 64, 1, 1, 0, 1, True),
    "stem-7x7-s2": ((8, 3, 64, 64), 32, 7, 2, 3, 1, True),
    "depthwise-3x3": ((16, 64, 32, 32), 64, 3, 1, 1, 64, True),
    "depthwise-3x3-s2": ((16, 128, 16, 16), 128, 3, 2, 1, 128, True),  # a MobileNet downsampling layer
}


def _case(name):
    xs, k, r, stride, pad, groups, need_dx = SHAPES[name]
    x = rand(xs, seed=1)
    w = rand((k, xs[1] // groups, r, r), seed=2) * np.float32(0.1)
    b = rand((k,), seed=3)
    p = (xs[2] + 2 * pad - r) // stride + 1
    q = (xs[3] + 2 * pad - r) // stride + 1
    dy = rand((xs[0], k, p, q), seed=4)
    flops = 3 * 2 * xs[0] * k * (xs[1] // groups) * r * r * p * q
    group = f"conv2d fwd+bwd f32 {name} {xs}->{k}x{r}x{r} s{stride} p{pad}" + (f" g{groups}" if groups > 1 else "")
    kw = dict(stride=stride, padding=pad, groups=groups)
    return x, w, b, dy, kw, (need_dx, True, True), flops, group


@pytest.mark.parametrize("name", list(SHAPES))
def test_conv_nnx(benchmark, name):
    x, w, b, dy, kw, needs, flops, group = _case(name)
    record(benchmark, group, "nnx", flops=flops)

    def step():
        ops.conv2d(x, w, b, **kw)
        return ops.conv2d_backward(dy, x, w, b, needs=needs, **kw)

    dx, dw, db = benchmark(step)
    assert dw.shape == w.shape and (dx is None) == (not needs[0])


@pytest.mark.parametrize("name", list(SHAPES))
def test_conv_torch(benchmark, name, torch_or_skip):
    torch = torch_or_skip
    x, w, b, dy, kw, needs, flops, group = _case(name)
    record(benchmark, group, "torch", flops=flops)
    tx, tw, tb, tdy = (torch.from_numpy(a) for a in (x, w, b, dy))
    s, p, g = kw["stride"], kw["padding"], kw["groups"]

    def step():
        torch.nn.functional.conv2d(tx, tw, tb, s, p, 1, g)
        return torch.ops.aten.convolution_backward(tdy, tx, tw, [tw.shape[0]], [s, s], [p, p], [1, 1], False,
                                                   [0, 0], g, list(needs))

    benchmark(step)


@pytest.mark.parametrize("name", ["lenet-conv1", "lenet-conv2"])
def test_conv_reference(benchmark, name):
    """The NumPy reference is slow (a loop of einsums per kernel offset): only the small LeNet layers."""
    x, w, b, dy, kw, needs, flops, group = _case(name)
    record(benchmark, group, "reference", flops=flops)

    def step():
        reference.conv2d(x, w, b, **kw)
        return reference.conv2d_backward(dy, x, w, b, needs=needs, **kw)

    benchmark.pedantic(step, rounds=3, iterations=1, warmup_rounds=0)
