"""Activations and softmax on the C++ kernels (cpp/activation). Same names and signatures as
nnx.reference.activation; inputs of any layout, results new C-contiguous arrays."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .._backend import _C
from .._args import check_axis, check_same_shape, empty, float_array, repeats_one_value, same_dtype
from ._checks import contiguous

__all__ = [
    "relu", "relu_backward", "sigmoid", "sigmoid_backward", "tanh", "tanh_backward",
    "leaky_relu", "leaky_relu_backward", "elu", "elu_backward",
    "softmax", "softmax_backward", "log_softmax", "log_softmax_backward",
]

# Kernel codes: defined once in C++ (cpp/common/epilogue.h, Act), exported by the bindings.
_CODES = _C.ACTIVATION_CODES
_RELU, _LEAKY_RELU, _SIGMOID, _TANH, _ELU = (_CODES[n] for n in ("relu", "leaky_relu", "sigmoid", "tanh", "elu"))


def _real(v, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(v).__name__} {v!r}")
    return float(v)


def _forward(x, code: int, param: float = 0.0) -> np.ndarray:
    x = contiguous(float_array(x, "x"), "x")
    out = empty(x.shape, x.dtype, "y")
    # Flat views (free for C-contiguous arrays): element-wise kernels need no shape, and any ndim works.
    _C.act_forward(x.reshape(-1), out.reshape(-1), code, param)
    return out


def _one_value(dy: np.ndarray):
    """The one value a broadcast dy repeats (a sum's or mean's gradient: every stride 0), as a one-element view of
    its memory, which the kernel reads for every element instead of a copy spread over dx's size; else None."""
    if repeats_one_value(dy) and dy.flags.aligned:
        return dy[(slice(0, 1),) * dy.ndim].reshape(1)
    return None


def _backward(dy, x, code: int, param: float = 0.0) -> np.ndarray:
    dy = float_array(dy, "dy")
    x = float_array(x, "x")
    same_dtype(dy=dy, x=x)
    check_same_shape(x, "x", dy, "dy")
    out = empty(x.shape, x.dtype, "dx")
    g = _one_value(dy)
    if g is None:
        g = contiguous(dy, "dy").reshape(-1)
    _C.act_backward(g, contiguous(x, "x").reshape(-1), out.reshape(-1), code, param)
    return out


def relu(x):
    """max(x, 0) element-wise (NaN stays NaN)."""
    return _forward(x, _RELU)


def relu_(x):  # not in __all__: functional.relu's in-place step when it fuses into the op before it
    """x = max(x, 0) in place (x a C-contiguous float array); returns x."""
    if not (isinstance(x, np.ndarray) and x.dtype in (np.float32, np.float64) and x.flags.c_contiguous
            and x.flags.writeable):
        raise TypeError("x: relu_ needs a writeable C-contiguous float32 or float64 ndarray")
    _C.act_forward(x.reshape(-1), x.reshape(-1), _RELU, 0.0)
    return x


def relu_backward(dy, x):
    return _backward(dy, x, _RELU)


def sigmoid(x):
    """1 / (1 + exp(-x)), computed without overflow for any x."""
    return _forward(x, _SIGMOID)


def sigmoid_backward(dy, x):
    return _backward(dy, x, _SIGMOID)


def tanh(x):
    return _forward(x, _TANH)


def tanh_backward(dy, x):
    return _backward(dy, x, _TANH)


def leaky_relu(x, negative_slope=0.01):
    """x if x > 0 else negative_slope * x."""
    return _forward(x, _LEAKY_RELU, _real(negative_slope, "negative_slope"))


def leaky_relu_backward(dy, x, negative_slope=0.01):
    return _backward(dy, x, _LEAKY_RELU, _real(negative_slope, "negative_slope"))


def elu(x, alpha=1.0):
    """x if x > 0 else alpha * (exp(x) - 1)."""
    return _forward(x, _ELU, _real(alpha, "alpha"))


def elu_backward(dy, x, alpha=1.0):
    return _backward(dy, x, _ELU, _real(alpha, "alpha"))


def _softmax_input(x, axis):
    x = float_array(x, "x")
    if x.ndim == 0:
        raise ValueError("x: expected an array with at least 1 dimension for softmax, got a 0-D array")
    return contiguous(x, "x"), check_axis(axis, x.ndim)


def _as_3d(shape, ax):
    """(outer, n, inner) of a C-contiguous array softmaxed along `ax`: the kernels' view, any ndim."""
    return (math.prod(shape[:ax]), shape[ax], math.prod(shape[ax + 1:]))


def _softmax(x, axis, log: bool) -> np.ndarray:
    x, ax = _softmax_input(x, axis)
    out = empty(x.shape, x.dtype, "y")
    v = _as_3d(x.shape, ax)
    _C.softmax(x.reshape(v), out.reshape(v), 1, log)
    return out


def _softmax_backward(dy, x, axis, log: bool, y=None) -> np.ndarray:
    """From the forward input x, or from the forward output y when given (x is then not read; if given, its
    shape must match)."""
    if y is None:
        x, ax = _softmax_input(x, axis)
        src, name, kernel = x, "x", _C.softmax_backward
    else:
        y, ax = _softmax_input(y, axis)
        if x is not None:
            check_same_shape(y, "y", float_array(x, "x"), "x")
        src, name, kernel = y, "y", _C.softmax_backward_from_output
    dy = float_array(dy, "dy")
    same_dtype(dy=dy, **{name: src})
    check_same_shape(src, name, dy, "dy")
    out = empty(src.shape, src.dtype, "dx")
    v = _as_3d(src.shape, ax)
    kernel(contiguous(dy, "dy").reshape(v), src.reshape(v), out.reshape(v), 1, log)
    return out


def softmax(x, axis=-1):
    """exp(x - max) / sum(exp(x - max)) along `axis`."""
    return _softmax(x, axis, False)


def softmax_backward(dy, x, axis=-1, *, y=None):
    """Gradient of softmax at the forward input x: s * (dy - sum(dy * s)). With y = softmax(x), the forward
    output training keeps, s is y and nothing is recomputed (x is then not read and may be None)."""
    return _softmax_backward(dy, x, axis, False, y)


def log_softmax(x, axis=-1):
    """(x - max) - log(sum(exp(x - max))) along `axis`."""
    return _softmax(x, axis, True)


def log_softmax_backward(dy, x, axis=-1, *, y=None):
    """Gradient of log_softmax at the forward input x: dy - softmax(x) * sum(dy). With y = log_softmax(x),
    softmax(x) is exp(y) and nothing else is recomputed (x is then not read and may be None)."""
    return _softmax_backward(dy, x, axis, True, y)
