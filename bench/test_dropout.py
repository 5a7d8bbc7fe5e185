"""Dropout benchmarks: forward and backward (p = 0.5, training) on float32 arrays of 1 M and 16 M
elements and on a conv feature map (64, 32, 28, 28); nnx against the NumPy reference and PyTorch.

    python -m pytest bench/test_dropout.py --threads 2 --benchmark-only

bytes_moved is x read + y written (2 arrays). "nnx" is what training runs (nnx.functional.dropout, so
nn.Dropout): the mask is generated from (seed, index) in registers, the forward saves it as bits (1/32 of
the float32 array) and the backward reads them (dropout(..., return_mask=True), dropout_backward(...,
mask=)). "nnx-regenerate" is the ops-level alternative that saves nothing: its backward hashes every index
again, so it moves no mask but costs the hash a second time (its ratio is to nnx's training path).
PyTorch's functional dropout draws a Bernoulli mask array and multiplies; its backward is dy times the mask
autograd saved (torch.mul here: dy and the mask read, dx written). All are counted as 2 arrays, so the GB/s
columns describe the same work.
"""
from __future__ import annotations

import pytest

from conftest import rand, record
from nnx import ops, reference as ref

SIZES = {"1M": (1 << 20,), "16M": (1 << 24,), "64x32x28x28": (64, 32, 28, 28)}
CASES = [(op, s) for op in ("fwd", "bwd") for s in SIZES]
P, SEED = 0.5, 1234


@pytest.mark.parametrize("impl", ["nnx", "nnx-regenerate", "numpy", "torch"])
@pytest.mark.parametrize("op,size", CASES, ids=[f"{o}-{s}" for o, s in CASES])
def test_dropout(benchmark, op, size, impl):
    x = rand(SIZES[size], seed=1)
    dy = rand(SIZES[size], seed=2)
    if impl == "torch":
        from conftest import optional_torch

        torch = optional_torch()
        if torch is None:
            pytest.skip("PyTorch not installed")
        tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
        if op == "fwd":
            fn = lambda: torch.nn.functional.dropout(tx, P, True)  # noqa: E731
        else:
            mask = torch.nn.functional.dropout(torch.ones_like(tx), P, True)  # saved scaled mask
            fn = lambda: tdy * mask  # noqa: E731
    elif impl == "nnx":
        if op == "fwd":
            fn = lambda: ops.dropout(x, P, True, SEED, return_mask=True)  # noqa: E731
        else:
            _, mask = ops.dropout(x, P, True, SEED, return_mask=True)
            fn = lambda: ops.dropout_backward(dy, x, P, True, SEED, mask=mask)  # noqa: E731
    else:
        lib = ops if impl == "nnx-regenerate" else ref
        fn = (lambda: lib.dropout(x, P, True, SEED)) if op == "fwd" else (lambda: lib.dropout_backward(dy, x, P, True, SEED))
    record(benchmark, f"dropout {op} f32 {size}", impl, bytes_moved=2 * x.nbytes)
    benchmark.pedantic(fn, rounds=3 if impl == "numpy" else 20, iterations=1, warmup_rounds=1)
