"""Optimizer step benchmarks: one update of a single float32 parameter of 1 M and 16 M elements by SGD with
momentum, Adam, RMSprop, Adagrad and Adadelta; nnx (C++ fused loop, through Optimizer.step) against the
same update written in NumPy (in place, as few temporaries as the expression allows) and torch.optim
(default implementation for CPU tensors) on the same thread count.

    python -m pytest bench/test_optim.py --threads 1 --benchmark-only
    python bench/report.py bench/test_optim.py --threads 1 2

bytes_moved is what the update must read and write: SGD+momentum reads p, g, buf and writes p, buf (5
arrays); Adam reads p, g, m, v and writes p, m, v (7); RMSprop and Adagrad read p, g, s and write p, s
(5); Adadelta reads p, g, s, u and writes p, s, u (7).
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import rand, record
from nnx import optim
from nnx.nn import Parameter

SIZES = {"1M": 1 << 20, "16M": 1 << 24}
ARRAYS_MOVED = {"sgd_momentum": 5, "adam": 7, "rmsprop": 5, "adagrad": 5, "adadelta": 7}
HYPER = {"sgd_momentum": ("SGD", dict(lr=1e-3, momentum=0.9)), "adam": ("Adam", dict(lr=1e-3)),
         "rmsprop": ("RMSprop", dict(lr=1e-3)), "adagrad": ("Adagrad", dict(lr=1e-2)),
         "adadelta": ("Adadelta", dict(lr=1.0))}


def _numpy_step(kind, p, g):
    """The same update in NumPy, in place; returns the step function."""
    if kind == "sgd_momentum":
        buf = g.copy()

        def step():
            nonlocal buf, p
            buf *= 0.9
            buf += g
            p -= 1e-3 * buf
        return step
    if kind == "adam":
        m, v, t = np.zeros_like(p), np.zeros_like(p), [0]

        def step():
            nonlocal m, v, p
            t[0] += 1
            m += 0.1 * (g - m)
            v *= 0.999
            v += 0.001 * g * g
            denom = np.sqrt(v)
            denom /= np.float32(np.sqrt(1 - 0.999 ** t[0]))
            denom += np.float32(1e-8)
            p -= np.float32(1e-3 / (1 - 0.9 ** t[0])) * m / denom
        return step
    if kind == "adagrad":
        acc = np.zeros_like(p)

        def step():
            acc[...] += g * g
            p[...] -= np.float32(1e-2) * g / (np.sqrt(acc) + np.float32(1e-10))
        return step
    if kind == "adadelta":
        sq, u = np.zeros_like(p), np.zeros_like(p)

        def step():
            sq[...] = 0.9 * sq + 0.1 * g * g
            d = np.sqrt(u + np.float32(1e-6)) / np.sqrt(sq + np.float32(1e-6)) * g
            u[...] = 0.9 * u + 0.1 * d * d
            p[...] -= d
        return step
    s = np.zeros_like(p)

    def step():
        nonlocal s, p
        s *= 0.99
        s += 0.01 * g * g
        p -= 1e-3 * g / (np.sqrt(s) + np.float32(1e-8))
    return step


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("kind", list(HYPER))
@pytest.mark.parametrize("impl", ["nnx", "numpy", "torch"])
def test_optimizer_step(benchmark, impl, kind, size, request):
    n = SIZES[size]
    p0, g = rand((n,), seed=1), rand((n,), seed=2)
    name, kw = HYPER[kind]
    if impl == "nnx":
        p = Parameter(p0.copy())
        p.grad = g
        step = getattr(optim, name)([p], **kw).step
    elif impl == "numpy":
        step = _numpy_step(kind, p0.copy(), g)
    else:
        torch = request.getfixturevalue("torch_or_skip")
        tp = torch.nn.Parameter(torch.from_numpy(p0.copy()))
        tp.grad = torch.from_numpy(g)
        step = getattr(torch.optim, name)([tp], **kw).step
    step()  # state allocation happens on the first step, outside the timing
    record(benchmark, f"{kind}-{size}", impl, bytes_moved=ARRAYS_MOVED[kind] * 4 * n)
    benchmark(step)
