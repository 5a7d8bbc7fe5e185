"""Conv2d, ReLU, MaxPool2d 2x2: one training step of the block, forward then backward, nnx against PyTorch CPU
on the same float32 arrays and thread count.

    python -m pytest bench/test_conv_pool.py --threads 1 --benchmark-only
    python bench/report.py bench/test_conv_pool.py --threads 1 2

- "nnx": what nn.Sequential runs for the block: ops.conv2d_max_pool2d (each image's convolution output pooled
  while in cache, never stored; the ReLU applied to the maxima) and its backward (the pooling's backward masked
  by its output, then the convolution's backward).
- "nnx-two-ops": the convolution with the ReLU in its epilogue, then max_pool2d with indices; backward from
  the indices, then the convolution's backward masking by its output (what nnx ran before).
- "torch": the aten kernels a PyTorch step runs for the block (convolution, relu, max_pool2d_with_indices;
  max_pool2d_with_indices_backward, threshold_backward, convolution_backward), called directly, without
  autograd's bookkeeping.

The backward computes dw, db, and dx except for a network's first layer. flops = 3 * 2*N*K*C*R*S*P*Q (the
convolution's forward and two backward products, dx counted even where skipped, as bench/test_conv.py).
"""
from __future__ import annotations

import pytest

from conftest import rand, record
from nnx import ops

# name: (N, C, H, W), K, R, padding, needs dx
SHAPES = {
    "lenet-conv1": ((64, 1, 28, 28), 6, 5, 2, False),
    "lenet-conv2": ((64, 6, 14, 14), 16, 5, 0, True),
    "convnet-conv1": ((64, 1, 28, 28), 32, 5, 2, False),
    "convnet-conv2": ((64, 32, 14, 14), 64, 5, 2, True),
}


def _case(name):
    xs, k, r, pad, need_dx = SHAPES[name]
    x = rand(xs, seed=1)
    w = rand((k, xs[1], r, r), seed=2) * (1.0 / (xs[1] * r * r) ** 0.5)
    b = rand((k,), seed=3) * 0.1
    p = xs[2] + 2 * pad - r + 1
    dy = rand((xs[0], k, p // 2, p // 2), seed=4)
    flops = 3 * 2 * xs[0] * k * xs[1] * r * r * p * p
    group = f"conv+relu+maxpool fwd+bwd f32 {name} {xs}->{k}x{r}x{r} p{pad}"
    return x, w, b, dy, pad, (need_dx, True, True), flops, group


@pytest.mark.parametrize("impl", ["nnx", "nnx-two-ops"])
@pytest.mark.parametrize("name", list(SHAPES))
def test_conv_pool_nnx(benchmark, name, impl):
    x, w, b, dy, pad, needs, flops, group = _case(name)
    record(benchmark, group, impl, flops=flops)

    def fused():
        y, idx = ops.conv2d_max_pool2d(x, w, b, padding=pad, kernel_size=2, activation="relu")
        return ops.conv2d_max_pool2d_backward(dy, x, w, b, padding=pad, kernel_size=2, indices=idx,
                                              activation="relu", y=y, needs=needs)

    def two_ops():
        z = ops.conv2d(x, w, b, padding=pad, activation="relu")
        _, idx = ops.max_pool2d(z, 2, return_indices=True)
        dz = ops.max_pool2d_backward(dy, z, 2, indices=idx)
        return ops.conv2d_backward(dz, x, w, b, padding=pad, activation="relu", y=z, needs=needs)

    dx, dw, db = benchmark(fused if impl == "nnx" else two_ops)
    assert dw.shape == w.shape and (dx is None) == (not needs[0])


@pytest.mark.parametrize("name", list(SHAPES))
def test_conv_pool_torch(benchmark, name, torch_or_skip):
    torch = torch_or_skip
    x, w, b, dy, pad, needs, flops, group = _case(name)
    record(benchmark, group, "torch", flops=flops)
    tx, tw, tb, tdy = (torch.from_numpy(a) for a in (x, w, b, dy))
    aten = torch.ops.aten

    def step():
        z = aten.convolution(tx, tw, tb, [1, 1], [pad, pad], [1, 1], False, [0, 0], 1)
        r = aten.relu(z)
        y, idx = aten.max_pool2d_with_indices(r, [2, 2], [2, 2])
        dr = aten.max_pool2d_with_indices_backward(tdy, r, [2, 2], [2, 2], [0, 0], [1, 1], False, idx)
        dz = aten.threshold_backward(dr, r, 0)
        return aten.convolution_backward(dz, tx, tw, [tw.shape[0]], [1, 1], [pad, pad], [1, 1], False, [0, 0], 1,
                                         list(needs))

    benchmark(step)
