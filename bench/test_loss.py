"""Loss benchmarks (forward, float32): nnx against the NumPy reference (nnx.reference, plain NumPy) and
torch.nn.functional on the same arrays and thread count.

    python -m pytest bench/test_loss.py --threads 2 --benchmark-only

bytes_moved counts the inputs read (the result is one scalar). Cross-entropy's backward is benchmarked
for nnx and the reference only (PyTorch computes it inside autograd, which cannot be timed on its own
without also timing the forward).
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import optional_torch, rand, record
from nnx import ops, reference as ref

CE_SHAPES = [(4096, 1000), (65536, 10)]
ELEMENTWISE_N = [1 << 24]
SUM_N = [1 << 18, 1 << 24]  # 1 MiB of float32 (in L2) and 64 MiB


def _ce_inputs(n, c):
    z = rand((n, c), np.float32, seed=1)
    t = np.random.default_rng(2).integers(0, c, n)
    return z, t


def _torch(impl):
    if impl != "torch":
        return None
    torch = optional_torch()
    if torch is None:
        pytest.skip("PyTorch not installed")
    return torch


@pytest.mark.parametrize("impl", ["nnx", "numpy", "torch"])
@pytest.mark.parametrize("n,c", CE_SHAPES, ids=[f"{n}x{c}" for n, c in CE_SHAPES])
def test_cross_entropy(benchmark, n, c, impl):
    z, t = _ce_inputs(n, c)
    torch = _torch(impl)
    if impl == "nnx":
        call = lambda: ops.cross_entropy(z, t)  # noqa: E731
    elif impl == "numpy":
        call = lambda: ref.cross_entropy(z, t)  # noqa: E731
    else:
        zt, tt = torch.from_numpy(z), torch.from_numpy(t)
        call = lambda: torch.nn.functional.cross_entropy(zt, tt)  # noqa: E731
    record(benchmark, f"loss cross_entropy f32 {n}x{c}", impl, bytes_moved=z.nbytes + t.nbytes)
    benchmark.pedantic(call, rounds=10, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("impl", ["nnx", "numpy"])
@pytest.mark.parametrize("n,c", CE_SHAPES, ids=[f"{n}x{c}" for n, c in CE_SHAPES])
def test_cross_entropy_backward(benchmark, n, c, impl):
    z, t = _ce_inputs(n, c)
    fn = ops.cross_entropy_backward if impl == "nnx" else ref.cross_entropy_backward
    record(benchmark, f"loss cross_entropy_backward f32 {n}x{c}", impl, bytes_moved=2 * z.nbytes + t.nbytes)
    benchmark.pedantic(lambda: fn(1.0, z, t), rounds=10, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("impl", ["nnx", "numpy", "torch"])
@pytest.mark.parametrize("name", ["mse_loss", "binary_cross_entropy_with_logits"])
@pytest.mark.parametrize("n", ELEMENTWISE_N, ids=lambda n: f"{n >> 20}M")
def test_elementwise_loss(benchmark, name, n, impl):
    p = rand((n,), np.float32, seed=1)
    q = np.random.default_rng(2).uniform(0, 1, n).astype(np.float32)
    torch = _torch(impl)
    if impl == "nnx":
        fn = getattr(ops, name)
        call = lambda: fn(p, q)  # noqa: E731
    elif impl == "numpy":
        fn = getattr(ref, name)
        call = lambda: fn(p, q)  # noqa: E731
    else:
        fn = getattr(torch.nn.functional, name)
        pt, qt = torch.from_numpy(p), torch.from_numpy(q)
        call = lambda: fn(pt, qt)  # noqa: E731
    record(benchmark, f"loss {name} f32 {n >> 20}M", impl, bytes_moved=p.nbytes + q.nbytes)
    benchmark.pedantic(call, rounds=5, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("impl", ["nnx", "numpy", "torch"])
@pytest.mark.parametrize("n", SUM_N)
def test_sum(benchmark, n, impl):
    # The sum of all elements (Tensor.sum): nnx.ops.sum (the loss family's chunked double sum), NumPy's own
    # float32 sum (what Tensor.sum ran before; nnx.reference.sum sums in float64), torch.sum.
    x = rand((n,), np.float32, seed=3)
    torch = _torch(impl)
    if impl == "nnx":
        call = lambda: ops.sum(x)  # noqa: E731
    elif impl == "numpy":
        call = x.sum
    else:
        xt = torch.from_numpy(x)
        call = lambda: torch.sum(xt)  # noqa: E731
    record(benchmark, f"reduce sum f32 {n}", impl, bytes_moved=x.nbytes)
    benchmark.pedantic(call, rounds=20, iterations=1, warmup_rounds=2)
