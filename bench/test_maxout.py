"""Maxout benchmarks: forward and backward on float32, over the channels of a conv feature map
(64, 64, 28, 28) -> (64, 32, 28, 28) with 2 pieces (nn.ChannelMaxout after a 64-filter conv), and along
the last axis of a maxout MLP layer's pre-activations (256, 1024) -> (256, 256) with 4 pieces (nn.Maxout);
nnx against the NumPy reference and PyTorch.

    python -m pytest bench/test_maxout.py --threads 2 --benchmark-only

bytes_moved: forward reads x and writes y (x.nbytes * (1 + 1/pieces)); backward reads dy and x and
writes dx (x.nbytes * (2 + 1/pieces)). PyTorch's forward is x.view(..., pieces, ...).max(dim) (values and
indices: its indices array is extra traffic it chose), its backward what autograd runs for that max:
a zero dx with dy scattered at the saved indices (dy and the indices read, dx written).
"""
from __future__ import annotations

import pytest

from conftest import rand, record
from nnx import ops, reference as ref

SHAPES = {"channels-64x64x28x28-k2": ((64, 64, 28, 28), 2, 1), "features-256x1024-k4": ((256, 1024), 4, 1)}
CASES = [(op, s) for op in ("fwd", "bwd") for s in SHAPES]


def _torch_fn(torch, op, x, dy, pieces, axis):
    shape = x.shape[:axis] + (x.shape[axis] // pieces, pieces) + x.shape[axis + 1:]
    tx = torch.from_numpy(x).view(shape)
    if op == "fwd":
        return lambda: tx.max(dim=axis + 1)
    idx = tx.max(dim=axis + 1).indices.unsqueeze(axis + 1)
    tdy = torch.from_numpy(dy).unsqueeze(axis + 1)
    return lambda: torch.zeros(shape).scatter_(axis + 1, idx, tdy)


@pytest.mark.parametrize("impl", ["nnx", "numpy", "torch"])
@pytest.mark.parametrize("op,case", CASES, ids=[f"{o}-{s}" for o, s in CASES])
def test_maxout(benchmark, op, case, impl):
    shape, pieces, axis = SHAPES[case]
    x = rand(shape, seed=1)
    y_shape = shape[:axis] + (shape[axis] // pieces,) + shape[axis + 1:]
    dy = rand(y_shape, seed=2)
    if impl == "torch":
        from conftest import optional_torch

        torch = optional_torch()
        if torch is None:
            pytest.skip("PyTorch not installed")
        fn = _torch_fn(torch, op, x, dy, pieces, axis)
    else:
        lib = ops if impl == "nnx" else ref
        fn = (lambda: lib.maxout(x, pieces, axis)) if op == "fwd" else (lambda: lib.maxout_backward(dy, x, pieces, axis))
    extra = 1 if op == "fwd" else 2
    record(benchmark, f"maxout {op} f32 {case}", impl, bytes_moved=int(x.nbytes * (extra + 1 / pieces)))
    benchmark.pedantic(fn, rounds=3 if impl == "numpy" else 20, iterations=1, warmup_rounds=1)
