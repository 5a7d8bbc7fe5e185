"""Activation benchmarks: relu, sigmoid, tanh, softmax and a few backwards on float32 tensors of 1 M,
16 M and 100 M elements and on a conv feature map (64, 32, 56, 56); nnx against the NumPy expression
and PyTorch on the same arrays (torch.from_numpy, no copy) and thread count.

    python -m pytest bench/test_activation.py --threads 2 --benchmark-only
    python bench/report.py bench/test_activation.py --threads 1 2

bytes_moved counts what the operation must read and write (forward: x in, y out; backward: dy and x in,
dx out), so report.py's "of copy" column compares with bench/machine.json's copy bandwidth. Every
implementation allocates its output per call, as the ops contract (and torch's functional API) do.
Softmax runs over rows of 1000 for the flat sizes and over the channel axis (dim 1) for the feature map.
PyTorch's sigmoid/softmax backwards take the forward OUTPUT (saved by autograd) while nnx's sigmoid backward
takes the input x: the same bytes move, nnx recomputes the forward in registers. nnx's softmax backward is
timed as nnx.functional runs it, from the saved output too (softmax_backward(dy, None, y=y)); the one that
recomputes the softmax from x is "nnx-from-input" (its ratio is to nnx's).
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import rand, record
from nnx import ops

SIZES = {"1M": (1 << 20,), "16M": (1 << 24,), "100M": (100_000_000,), "64x32x56x56": (64, 32, 56, 56)}


def _np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _np_sigmoid_backward(dy, x):
    s = _np_sigmoid(x)
    return dy * s * (1 - s)


def _np_softmax_backward(dy, x, axis):
    s = _np_softmax(x, axis)
    return s * (dy - (dy * s).sum(axis=axis, keepdims=True))


# op -> (number of input arrays, impl -> callable factory)
def _impls(op, torch):
    if op == "relu":
        return 1, {"nnx": lambda x: ops.relu(x), "numpy": lambda x: np.maximum(x, 0),
                   "torch": lambda x: torch.relu(x)}
    if op == "sigmoid":
        return 1, {"nnx": ops.sigmoid, "numpy": _np_sigmoid, "torch": lambda x: torch.sigmoid(x)}
    if op == "tanh":
        return 1, {"nnx": ops.tanh, "numpy": np.tanh, "torch": lambda x: torch.tanh(x)}
    if op == "softmax":
        return 1, {"nnx": lambda x, ax: ops.softmax(x, axis=ax), "numpy": _np_softmax,
                   "torch": lambda x, ax: torch.softmax(x, ax)}
    if op == "relu_backward":
        return 2, {"nnx": ops.relu_backward, "numpy": lambda dy, x: dy * (x > 0),
                   "torch": lambda dy, x: torch.ops.aten.threshold_backward(dy, x, 0)}
    if op == "sigmoid_backward":
        return 2, {"nnx": ops.sigmoid_backward, "numpy": _np_sigmoid_backward,
                   "torch": lambda dy, y: torch.ops.aten.sigmoid_backward(dy, y)}
    if op == "softmax_backward":
        return 2, {"nnx": lambda dy, y, ax: ops.softmax_backward(dy, None, axis=ax, y=y),
                   "nnx-from-input": lambda dy, x, ax: ops.softmax_backward(dy, x, axis=ax),
                   "numpy": _np_softmax_backward,
                   "torch": lambda dy, y, ax: torch.ops.aten._softmax_backward_data(dy, y, ax, torch.float32)}
    raise KeyError(op)


CASES = [(op, size) for op in ("relu", "sigmoid", "tanh", "softmax") for size in SIZES]
CASES += [(op, size) for op in ("relu_backward", "sigmoid_backward", "softmax_backward") for size in ("16M", "64x32x56x56")]

_ARRAYS: dict = {}


def _arrays(size):
    # One set of inputs per size, shared by all cases (100 M floats are 400 MB each).
    if size not in _ARRAYS:
        _ARRAYS.clear()
        shape = SIZES[size]
        x = rand(shape, np.float32, seed=1)
        if len(shape) == 1:
            x = x.reshape(-1, 1000) if shape[0] % 1000 == 0 else x.reshape(-1, 1024)
        _ARRAYS[size] = (x, rand(x.shape, np.float32, seed=2))
    return _ARRAYS[size]


@pytest.mark.parametrize("impl", ["nnx", "nnx-from-input", "numpy", "torch"])
@pytest.mark.parametrize("op,size", CASES, ids=[f"{o}-{s}" for o, s in CASES])
def test_activation(benchmark, op, size, impl):
    if impl == "nnx-from-input" and op != "softmax_backward":
        pytest.skip("only the softmax backward has a second nnx form")
    torch = None
    if impl == "torch":
        from conftest import optional_torch

        torch = optional_torch()
        if torch is None:
            pytest.skip("PyTorch not installed")
    n_in, impls = _impls(op, torch)
    fn = impls[impl]
    x, dy = _arrays(size)
    axis = 1
    if impl == "torch":
        x_t, dy_t = torch.from_numpy(x), torch.from_numpy(dy)
        if op == "sigmoid_backward":
            x_t = torch.sigmoid(x_t)  # torch's backward takes the saved output
        elif op == "softmax_backward":
            x_t = torch.softmax(x_t, axis)
        x, dy = x_t, dy_t
    elif impl == "nnx" and op == "softmax_backward":
        x = ops.softmax(x, axis=axis)  # the output nnx.functional.softmax keeps for its backward
    if op.startswith("softmax"):
        call = (lambda: fn(x, axis)) if n_in == 1 else (lambda: fn(dy, x, axis))
    else:
        call = (lambda: fn(x)) if n_in == 1 else (lambda: fn(dy, x))
    nbytes = 4 * int(np.prod(SIZES[size])) * (n_in + 1)
    record(benchmark, f"act {op} f32 {size}", impl, bytes_moved=nbytes)
    # NumPy's multi-pass expressions on 100 M elements take seconds: fewer rounds for the big ones.
    rounds = 3 if size == "100M" else (5 if size != "1M" else 30)
    with np.errstate(over="ignore"):
        benchmark.pedantic(call, rounds=rounds, iterations=1, warmup_rounds=1)
