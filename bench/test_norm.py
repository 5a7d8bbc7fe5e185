"""Normalization benchmarks: batch_norm (training forward and backward, evaluation forward, the fused
BN+ReLU pair) on the feature maps of the BatchNorm network and of a CIFAR ResNet-20 at batch 64, and
layer_norm forward/backward on transformer-sized rows; nnx against the NumPy reference and PyTorch
(ATen's native_batch_norm / native_layer_norm and their backwards, on the same arrays via
torch.from_numpy) at the same thread count.

    python -m pytest bench/test_norm.py --threads 2 --benchmark-only
    python bench/report.py bench/test_norm.py --threads 1 2

bytes_moved counts the passes over memory the operation cannot avoid once the array is larger than the
caches: a training forward must finish the statistics before it writes y, so it reads x twice and
writes y (3 arrays); a training backward reads (dy, x) for the sums and again for dx and writes dx (5; 7
with the fused ReLU's y read twice); evaluation reads x and writes y (2); layer_norm normalises a row
while it is in cache (forward 2 arrays, backward 3). Arrays that fit in the L3 cache are served faster
than this model assumes, so their "of copy" fraction can exceed 1. Both nnx and PyTorch take the saved
mean/invstd in their backward, and the fused case is compared with PyTorch's batch_norm followed by relu
(and threshold_backward then native_batch_norm_backward), what PyTorch runs for that pair on a CPU.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import rand, record
from nnx import ops, reference as ref

BN_SHAPES = {"bnnet-conv1": (64, 32, 28, 28), "bnnet-conv2": (64, 64, 14, 14), "bnnet-fc": (64, 256),
             "resnet-16x32x32": (64, 16, 32, 32), "resnet-64x8x8": (64, 64, 8, 8)}
LN_SHAPES = {"8192x512": (8192, 512), "64x256": (64, 256)}
BN_OPS = ("train_fwd", "train_bwd", "eval_fwd", "relu_fwd", "relu_bwd")
CASES = [("bn", op, s) for op in BN_OPS for s in BN_SHAPES]
CASES = [c for c in CASES if c[1] in ("train_fwd", "train_bwd") or c[2] in ("bnnet-conv1", "resnet-16x32x32")]
CASES += [("ln", op, s) for op in ("fwd", "bwd") for s in LN_SHAPES]
IMPLS = ["nnx", "numpy", "torch"]
EPS = 1e-5
_BYTES = {"train_fwd": 3, "train_bwd": 5, "eval_fwd": 2, "relu_fwd": 3, "relu_bwd": 7, "fwd": 2, "bwd": 3}


def _bn_inputs(shape):
    c = shape[1]
    x = rand(shape, seed=1)
    dy = rand(shape, seed=2)
    w, b = 1 + 0.1 * rand((c,), seed=3), 0.1 * rand((c,), seed=4)
    return x, dy, w, b, np.zeros(c, np.float32), np.ones(c, np.float32)


def _bn_nnx(op, lib, x, dy, w, b, rm, rv):
    act = "relu" if op.startswith("relu") else None
    y, mean, invstd = lib.batch_norm(x, w, b, rm, rv, True, 0.1, EPS, activation=act, return_stats=True)
    if op in ("train_fwd", "relu_fwd"):
        return lambda: lib.batch_norm(x, w, b, rm, rv, True, 0.1, EPS, activation=act)
    if op == "eval_fwd":
        return lambda: lib.batch_norm(x, w, b, rm, rv, False, 0.1, EPS)
    return lambda: lib.batch_norm_backward(dy, x, w, b, activation=act, y=y, mean=mean, invstd=invstd)


def _bn_torch(torch, op, x, dy, w, b, rm, rv):
    tx, tdy, tw, tb, trm, trv = (torch.from_numpy(a) for a in (x, dy, w, b, rm, rv))
    aten = torch.ops.aten
    y, mean, invstd = aten.native_batch_norm(tx, tw, tb, trm, trv, True, 0.1, EPS)
    if op == "train_fwd":
        return lambda: aten.native_batch_norm(tx, tw, tb, trm, trv, True, 0.1, EPS)
    if op == "relu_fwd":
        return lambda: torch.relu(aten.native_batch_norm(tx, tw, tb, trm, trv, True, 0.1, EPS)[0])
    if op == "eval_fwd":
        return lambda: aten.native_batch_norm(tx, tw, tb, trm, trv, False, 0.1, EPS)
    mask = [True, True, True]
    if op == "train_bwd":
        return lambda: aten.native_batch_norm_backward(tdy, tx, tw, trm, trv, mean, invstd, True, EPS, mask)
    ty = torch.relu(y)
    return lambda: aten.native_batch_norm_backward(aten.threshold_backward(tdy, ty, 0), tx, tw, trm, trv, mean,
                                                   invstd, True, EPS, mask)


def _ln_inputs(shape):
    d = shape[-1]
    return rand(shape, seed=1), rand(shape, seed=2), 1 + 0.1 * rand((d,), seed=3), 0.1 * rand((d,), seed=4)


def _ln_nnx(op, lib, x, dy, w, b):
    d = x.shape[-1]
    _, mean, invstd = lib.layer_norm(x, d, w, b, EPS, return_stats=True)
    if op == "fwd":
        return lambda: lib.layer_norm(x, d, w, b, EPS)
    return lambda: lib.layer_norm_backward(dy, x, d, w, b, EPS, mean=mean, invstd=invstd)


def _ln_torch(torch, op, x, dy, w, b):
    tx, tdy, tw, tb = (torch.from_numpy(a) for a in (x, dy, w, b))
    d = [x.shape[-1]]
    _, mean, rstd = torch.ops.aten.native_layer_norm(tx, d, tw, tb, EPS)
    if op == "fwd":
        return lambda: torch.ops.aten.native_layer_norm(tx, d, tw, tb, EPS)
    return lambda: torch.ops.aten.native_layer_norm_backward(tdy, tx, d, mean, rstd, tw, tb, [True, True, True])


def _call(case, impl, torch=None):
    fam, op, size = case
    if fam == "bn":
        args = _bn_inputs(BN_SHAPES[size])
        fn = _bn_torch(torch, op, *args) if impl == "torch" else _bn_nnx(op, ops if impl == "nnx" else ref, *args)
    else:
        args = _ln_inputs(LN_SHAPES[size])
        fn = _ln_torch(torch, op, *args) if impl == "torch" else _ln_nnx(op, ops if impl == "nnx" else ref, *args)
    return fn, args[0].nbytes * _BYTES[op]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=["-".join(c) for c in CASES])
def test_norm(benchmark, case, impl):
    torch = None
    if impl == "torch":
        from conftest import optional_torch

        torch = optional_torch()
        if torch is None:
            pytest.skip("PyTorch not installed")
    fn, nbytes = _call(case, impl, torch)
    fam, op, size = case
    record(benchmark, f"{'batch_norm' if fam == 'bn' else 'layer_norm'} {op} f32 {size}", impl, bytes_moved=nbytes)
    benchmark.pedantic(fn, rounds=3 if impl == "numpy" else 20, iterations=1, warmup_rounds=1)


def test_bench_results_agree():
    """Guards the benchmark against timing the wrong thing: nnx and PyTorch compute the same values."""
    torch = pytest.importorskip("torch")
    for case in CASES:
        fam, op, size = case
        got = _call(case, "nnx")[0]()
        want = _call(case, "torch", torch)[0]()
        got = got if isinstance(got, tuple) else (got,)
        want = want if isinstance(want, tuple) else (want,)
        for g, w in zip(got, want):  # the first outputs (y, or dx, dweight, dbias) line up
            if g is not None and tuple(g.shape) == tuple(w.shape):
                np.testing.assert_allclose(g, w.numpy(), rtol=2e-3, atol=2e-3, err_msg=str(case))
