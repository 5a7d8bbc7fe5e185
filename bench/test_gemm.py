"""GEMM benchmarks: squares and the shapes of small neural networks, nnx against NumPy's matmul (its
BLAS) and torch.mm, on the same arrays and thread count.

    python -m pytest bench/test_gemm.py --threads 1 --benchmark-only
    python bench/report.py bench/test_gemm.py --threads 1 2

Each group is named by dtype and shape: "gemm f32 MxNxK" computes an (M x K) @ (K x N) product;
"linear-like" shapes with trans_b use b stored as (N x K), as a layer's weight is. "matmul f32 ..." groups time
ops.matmul (Tensor @) on batched products against np.matmul and torch.matmul.
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


# ops.matmul (Tensor @): batches of products as attention computes them, and a batch of sequences times a
# weight matrix (folded into one GEMM); against np.matmul and torch.matmul. (a shape, b shape, b transposed)
#   (32,64,128) @ (32,128,64), b a transposed view   q @ k^T, 32 sequences of 64 positions, width 128
#   (32,64,64) @ (32,64,128)                         softmax(scores) @ v
#   (32,64,128) @ (128,128)                          x @ W_q for every position
MATMUL_SHAPES = [((32, 64, 128), (32, 64, 128), True), ((32, 64, 64), (32, 64, 128), False),
                 ((32, 64, 128), (128, 128), False)]


def _matmul_case(sa, sb, bt):
    a = rand(sa, np.float32, seed=1)
    b = rand(sb, np.float32, seed=2)
    if bt:
        b = np.swapaxes(b, -1, -2)
    out = np.matmul(np.empty(a.shape, np.float32), np.empty(b.shape, np.float32)).shape
    flops = 2 * int(np.prod(out)) * a.shape[-1]
    group = f"matmul f32 {sa}@{tuple(b.shape)}{' (b^T view)' if bt else ''}"
    return a, b, flops, group


@pytest.mark.parametrize("sa,sb,bt", MATMUL_SHAPES)
def test_matmul_nnx(benchmark, sa, sb, bt):
    a, b, flops, group = _matmul_case(sa, sb, bt)
    record(benchmark, group, "nnx", flops=flops)
    benchmark(lambda: ops.matmul(a, b))


@pytest.mark.parametrize("sa,sb,bt", MATMUL_SHAPES)
def test_matmul_numpy(benchmark, sa, sb, bt):
    a, b, flops, group = _matmul_case(sa, sb, bt)
    record(benchmark, group, "numpy", flops=flops)
    benchmark(lambda: np.matmul(a, b))


@pytest.mark.parametrize("sa,sb,bt", MATMUL_SHAPES)
def test_matmul_torch(benchmark, torch_or_skip, sa, sb, bt):
    torch = torch_or_skip
    a, b, flops, group = _matmul_case(sa, sb, bt)
    ta, tb_ = torch.from_numpy(a), torch.from_numpy(b)
    record(benchmark, group, "torch", flops=flops)
    benchmark(lambda: torch.matmul(ta, tb_))
