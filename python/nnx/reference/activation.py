"""Activations and softmax in plain NumPy: the oracle for nnx.ops.activation.

Each forward `f(x, ...)` has `f_backward(dy, x, ...)` returning dx = dy * f'(x) by the chain rule (for
softmax, the Jacobian-vector product). Conventions shared with the kernels: NaN in gives NaN out; relu's
gradient at NaN (and at 0) is 0; sigmoid and tanh never overflow.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "relu", "relu_backward", "sigmoid", "sigmoid_backward", "tanh", "tanh_backward",
    "leaky_relu", "leaky_relu_backward", "elu", "elu_backward",
    "softmax", "softmax_backward", "log_softmax", "log_softmax_backward",
]


def relu(x):
    """max(x, 0); np.maximum propagates NaN."""
    return np.maximum(x, 0)


def relu_(x):  # not in __all__: functional.relu's in-place step when it fuses into the op before it
    """x = max(x, 0) in place; returns x."""
    return np.maximum(x, 0, out=x)


def relu_backward(dy, x):
    """relu'(x) = 1 if x > 0 else 0."""
    return dy * (x > 0).astype(x.dtype)


def sigmoid(x):
    """1 / (1 + e^-x), written with e = e^-|x| <= 1 so no exponential can overflow:
    x >= 0: 1 / (1 + e);   x < 0: e^x / (1 + e^x) = e / (1 + e)."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def sigmoid_backward(dy, x):
    """sigmoid'(x) = s (1 - s) with s = sigmoid(x). Written as e / (1 + e)^2 with e = e^-|x| (the same
    value: s (1 - s) = e^-x / (1 + e^-x)^2, symmetric in x), which does not cancel where s is near 1."""
    e = np.exp(-np.abs(x))
    return dy * (e / ((1 + e) * (1 + e)))


def tanh(x):
    return np.tanh(x)


def tanh_backward(dy, x):
    """tanh'(x) = 1 - tanh(x)^2 = 1 / cosh(x)^2 = 4 e / (1 + e)^2 with e = e^(-2|x|); the last form
    neither overflows nor cancels where tanh(x) is near +-1."""
    e = np.exp(-2 * np.abs(x))
    return dy * (4 * e / ((1 + e) * (1 + e)))


def leaky_relu(x, negative_slope=0.01):
    """x if x > 0 else negative_slope * x."""
    return np.where(x > 0, x, x * negative_slope).astype(x.dtype)


def leaky_relu_backward(dy, x, negative_slope=0.01):
    """leaky_relu'(x) = 1 if x > 0 else negative_slope."""
    slope = np.where(x > 0, 1.0, negative_slope).astype(x.dtype)
    return dy * slope


def elu(x, alpha=1.0):
    """x if x > 0 else alpha (e^x - 1); expm1 keeps accuracy near 0, the min keeps the unused branch finite."""
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))).astype(x.dtype)


def elu_backward(dy, x, alpha=1.0):
    """elu'(x) = 1 if x > 0 else alpha e^x."""
    slope = np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0))).astype(x.dtype)
    return dy * slope


def softmax(x, axis=-1):
    """s_i = e^(x_i - m) / sum_j e^(x_j - m), m = max_j x_j (subtracting m changes nothing but overflow)."""
    z = x - np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def softmax_backward(dy, x, axis=-1, *, y=None):
    """ds_i/dx_j = s_i (delta_ij - s_j), so dx_j = sum_i dy_i s_i (delta_ij - s_j) = s_j (dy_j - sum_i dy_i s_i).
    y: the forward output softmax(x), used as s when given (x is then not read)."""
    s = softmax(x, axis) if y is None else y
    return s * (dy - np.sum(dy * s, axis=axis, keepdims=True))


def log_softmax(x, axis=-1):
    """log s_i = (x_i - m) - log sum_j e^(x_j - m)."""
    z = x - np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    with np.errstate(divide="ignore"):  # log(0) only for an empty axis, whose result is empty anyway
        return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def log_softmax_backward(dy, x, axis=-1, *, y=None):
    """d log s_i / dx_j = delta_ij - s_j, so dx_j = dy_j - s_j sum_i dy_i.
    y: the forward output log_softmax(x); s = exp(y) when given (x is then not read)."""
    s = softmax(x, axis) if y is None else np.exp(y)
    return dy - s * np.sum(dy, axis=axis, keepdims=True)
