"""GEMM benchmarks: squares and the shapes of small neural networks, nnx against NumPy's matmul (its
BLAS) and torch.mm, on the same arrays and thread count.

    python -m pytest bench/test_gemm.py --threads 1 --benchmark-only
    python bench/report.py bench/test_gemm.py --threads 1 2

Each group is named by dtype and shape: "gemm f32 MxNxK" computes an (M x K) @ (K x N) product;
"linear-like" shapes with trans_b use b stored as (N x K), as a layer's weight is.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import rand, record
from nnx import ops

SQUARES_F32 = [64, 128, 256, 320, 512, 1024, 2048]
SQUARES_F64 = [128, 512, 1024]
# (M, N, K, trans_b): LeNet/MLP/CNN layer shapes.
#   (64x400)·(400x120)ᵀ    LeNet fc1 forward, batch 64 (x @ w.T)
#   (120x64)·(64x400)      LeNet fc1 weight gradient (dyᵀ @ x)
#   (256x784)·(784x1024)ᵀ  MLP first layer on MNIST, batch 256
#   (64x576)·(576x3136)    3x3 conv with 64 filters on 64 channels, 56x56 output (im2col)
#   (4096x256)·(256x16)    1x1 conv / skinny: 4096 pixels, 256 channels in, 16 out
NN_SHAPES = [(64, 120, 400, True), (120, 400, 64, False), (256, 1024, 784, True), (64, 3136, 576, False),
             (4096, 16, 256, False)]


def _cases():
    for n in SQUARES_F32:
        yield pytest.param(np.float32, n, n, n, False, id=f"f32-{n}")
    for n in SQUARES_F64:
        yield pytest.param(np.float64, n, n, n, False, id=f"f64-{n}")
    for m, n, k, tb in NN_SHAPES:
        yield pytest.param(np.float32, m, n, k, tb, id=f"f32-{m}x{n}x{k}{'-tb' if tb else ''}")


def _operands(dtype, m, n, k, tb):
    a = rand((m, k), dtype, seed=1)
    b = rand((n, k) if tb else (k, n), dtype, seed=2)
    return a, b


def _group(dtype, m, n, k, tb):
    return f"gemm {np.dtype(dtype).name.replace('float', 'f')} {m}x{n}x{k}{' b^T' if tb else ''}"


def _run(benchmark, fn, flops):
    # Few rounds for the big squares so the whole file stays within a few minutes.
    if flops > 5e9:
        benchmark.pedantic(fn, rounds=5, iterations=1, warmup_rounds=1)
    else:
        benchmark(fn)


@pytest.mark.parametrize("dtype,m,n,k,tb", list(_cases()))
def test_gemm_nnx(benchmark, dtype, m, n, k, tb):
    a, b = _operands(dtype, m, n, k, tb)
    record(benchmark, _group(dtype, m, n, k, tb), "nnx", flops=2 * m * n * k)
    _run(benchmark, lambda: ops.gemm(a, b, trans_b=tb), 2 * m * n * k)


@pytest.mark.parametrize("dtype,m,n,k,tb", list(_cases()))
def test_gemm_numpy(benchmark, dtype, m, n, k, tb):
    a, b = _operands(dtype, m, n, k, tb)
    record(benchmark, _group(dtype, m, n, k, tb), "numpy", flops=2 * m * n * k)
    _run(benchmark, (lambda: a @ b.T) if tb else (lambda: a @ b), 2 * m * n * k)


@pytest.mark.parametrize("dtype,m,n,k,tb", list(_cases()))
def test_gemm_torch(benchmark, torch_or_skip, dtype, m, n, k, tb):
    torch = torch_or_skip
    a, b = _operands(dtype, m, n, k, tb)
    ta, tb_ = torch.from_numpy(a), torch.from_numpy(b)
    record(benchmark, _group(dtype, m, n, k, tb), "torch", flops=2 * m * n * k)
    _run(benchmark, (lambda: torch.mm(ta, tb_.T)) if tb else (lambda: torch.mm(ta, tb_)), 2 * m * n * k)
