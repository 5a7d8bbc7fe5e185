"""Pooling on the C++ kernels (cpp/pool): max, average, power-average (Lp) and global average, NCHW.

Same names, signatures and results as nnx.reference.pool (whose docstring spells out the window
arithmetic and PyTorch's rule for which element of a max window gets the gradient). Output size is
PyTorch's without ceil_mode: OH = (H + 2*padding - dilation*(kernel-1) - 1) // stride + 1.
"""
from __future__ import annotations

import functools
import math
import numbers

import numpy as np

from .._backend import _C
from .._args import check_alloc, check_ndim, empty, float_array, pair, same_dtype
from ._fused import activation_backward_from_output

__all__ = ["max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward", "lp_pool2d",
           "lp_pool2d_backward", "global_avg_pool2d", "global_avg_pool2d_backward"]

# Pooling kinds: defined once in C++ (cpp/pool/pool.h, PoolKind), exported by the bindings.
_MAX, _AVG, _LP, _GLOBAL = (_C.POOL_KINDS[k] for k in ("max", "avg", "lp", "global_avg"))
_RELU = _C.EPILOGUE_ACTIVATIONS["relu"]


class _Pool:
    """Validated pooling parameters for one input shape."""

    def __init__(self, x_shape, kernel_size, stride, padding, dilation):
        self.k = pair(kernel_size, "kernel_size", 1)
        self.s = self.k if stride is None else pair(stride, "stride", 1)
        self.p = pair(padding, "padding", 0)
        self.d = pair(dilation, "dilation", 1)
        # The output-shape formula and its checks live in C++ (cpp/pool/pool.h, the bindings' pool_shape).
        self.out_shape = _C.pool2d_output_shape(_MAX, tuple(x_shape), *self.args())
        n, c = x_shape[:2]
        self.empty = n * c == 0

    def args(self):
        return (*self.k, *self.s, *self.p, *self.d)


@functools.lru_cache(maxsize=256)
def _pool_cached(x_shape, kernel_size, stride, padding, dilation):
    return _Pool(x_shape, kernel_size, stride, padding, dilation)


def _plain_ints(v):
    return v is None or type(v) is int or (type(v) is tuple and all(type(a) is int for a in v))


def _pool(x_shape, kernel_size, stride, padding, dilation):
    """_Pool, memoised: a training loop pools the same shapes with the same parameters every step, and
    validating them costs more than pooling a small batch. Only plain ints are cached (2.0 == 2 and
    True == 1 as dict keys, but they must still be rejected)."""
    if all(_plain_ints(v) for v in (kernel_size, stride, padding, dilation)):
        return _pool_cached(x_shape, kernel_size, stride, padding, dilation)
    return _Pool(x_shape, kernel_size, stride, padding, dilation)


def _contiguous(x, name):
    """C-contiguous, aligned (flags checks: cheaper than x.ctypes on the small arrays of LeNet)."""
    if x.flags.c_contiguous and x.flags.aligned:
        return x
    check_alloc(x.shape, x.dtype, name, "a contiguous copy")
    y = np.ascontiguousarray(x)
    return y if y.flags.aligned else y.copy()


def _input(x):
    x = float_array(x, "x")
    check_ndim(x, "x", 4, "N, C, H, W")
    return x


def _grad_input(dy, x, out_shape):
    dy = float_array(dy, "dy")
    same_dtype(dy=dy, x=x)
    if dy.shape != out_shape:
        raise ValueError(f"dy: expected shape {out_shape} (the forward output's), got {dy.shape}")
    return dy


def _forward(kind, x, pool, p=1.0):
    out = empty(pool.out_shape, x.dtype, "y")
    if not pool.empty:
        _C.pool2d_forward(kind, _contiguous(x, "x"), out, *pool.args(), float(p))
    return out


def _backward(kind, dy, x, pool, p=1.0):
    dx = empty(x.shape, x.dtype, "dx")
    if not pool.empty:
        _C.pool2d_backward(kind, _contiguous(dy, "dy"), _contiguous(x, "x"), dx, *pool.args(), float(p))
    return dx


def _relu(activation):
    """True for activation="relu", False for None; the one activation that commutes with the maximum."""
    if activation is None:
        return False
    if activation == "relu":
        return True
    raise ValueError(f"activation: expected None or 'relu', got {activation!r}")


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, activation=None):
    """Maximum over each window (stride defaults to kernel_size). Padded positions never win; a NaN in a
    window makes its output NaN (as PyTorch). A dilated window lying wholly on padding gives -inf (index
    -1, no gradient).

    With return_indices=True returns (y, indices): indices (int32, y's shape) holds the offset ih*W + iw
    inside its plane of the element each output took (PyTorch's indices), for a backward pass that only
    scatters: max_pool2d_backward(..., indices=indices).

    activation="relu" returns relu of the maxima, the indices staying those of the maxima: equal to pooling
    relu(x) wherever a window holds a real element (relu is non-decreasing), with the ReLU applied to the
    pooled array instead of x (nn.Sequential runs Conv2d, ReLU, MaxPool2d so)."""
    x = _input(x)
    relu = _relu(activation)
    pool = _pool(x.shape, kernel_size, stride, padding, dilation)
    if not return_indices:
        out = _forward(_MAX, x, pool)
        if relu and out.size:
            _C.act_forward_inplace(out, _RELU, 0.0)
        return out
    out = empty(pool.out_shape, x.dtype, "y")
    indices = empty(pool.out_shape, np.int32, "indices")
    if not pool.empty:
        _C.max_pool2d_indices_forward(_contiguous(x, "x"), out, indices, *pool.args(), relu)
    return out, indices


def max_pool2d_backward(dy, x, kernel_size, stride=None, padding=0, dilation=1, indices=None, activation=None,
                        y=None):
    """dx: each window's gradient goes to its first maximum in row-major order (the last NaN if the
    window holds NaNs), PyTorch's rule; the choice is recomputed from x, or taken from `indices` (from
    max_pool2d(..., return_indices=True); PyTorch's int64 indices work too), which is faster.

    activation="relu" differentiates max_pool2d(..., activation="relu"), whose output y must be given: dy
    is masked by y > 0 first."""
    x = _input(x)
    relu = _relu(activation)
    pool = _pool(x.shape, kernel_size, stride, padding, dilation)
    dy = _grad_input(dy, x, pool.out_shape)
    if relu:
        if y is None:
            raise ValueError("y: activation='relu' needs the forward's output y")
        y = _contiguous(_grad_input(y, x, pool.out_shape), "y")
    if indices is None:
        if relu:
            dy = activation_backward_from_output(dy, y, "relu")
        return _backward(_MAX, dy, x, pool)
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"indices: expected an integer array (from max_pool2d(..., return_indices=True)), "
                        f"got dtype {indices.dtype}")
    if indices.shape != pool.out_shape:
        raise ValueError(f"indices: expected shape {pool.out_shape} (the forward output's), got {indices.shape}")
    if indices.dtype != np.int32:
        if indices.size and (indices.min() < -1 or indices.max() >= x.shape[2] * x.shape[3]):
            raise ValueError(f"indices: expected plane offsets in [-1, {x.shape[2] * x.shape[3]}), found "
                             f"{int(indices.min()) if indices.min() < -1 else int(indices.max())}")
        indices = indices.astype(np.int32)
    dx = empty(x.shape, x.dtype, "dx")
    if not pool.empty:
        _C.max_pool2d_indices_backward(_contiguous(dy, "dy"), _contiguous(indices, "indices"), dx, *pool.args(),
                                       y if relu else None)
    return dx


def _is_global(x_shape, pool):
    return pool.p == (0, 0) and pool.k == tuple(x_shape[2:])


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Mean over each window, padded positions counting as zeros (PyTorch's count_include_pad=True).
    A window covering the whole plane takes the global-average kernel."""
    x = _input(x)
    pool = _pool(x.shape, kernel_size, stride, padding, 1)
    return _forward(_GLOBAL if _is_global(x.shape, pool) else _AVG, x, pool)


def avg_pool2d_backward(dy, x, kernel_size, stride=None, padding=0):
    x = _input(x)
    pool = _pool(x.shape, kernel_size, stride, padding, 1)
    dy = _grad_input(dy, x, pool.out_shape)
    return _backward(_GLOBAL if _is_global(x.shape, pool) else _AVG, dy, x, pool)


def _norm_type(norm_type):
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real):
        raise TypeError(f"norm_type: expected a number, got {type(norm_type).__name__} {norm_type!r}")
    p = float(norm_type)
    if not (p > 0):
        raise ValueError(f"norm_type: expected a number > 0 (or inf), got {norm_type!r}")
    return p


def lp_pool2d(x, norm_type, kernel_size, stride=None):
    """(sum over the window of x**p) ** (1/p), PyTorch's LPPool2d (no padding). p=1: the sum; p=2: L2
    pooling; p=inf: the maximum of |x|. Negative x: x**p is negative for odd p and NaN for fractional p,
    and a negative window sum has a NaN root unless p=1, as in PyTorch."""
    x = _input(x)
    p = _norm_type(norm_type)
    if math.isinf(p):
        return max_pool2d(np.abs(x), kernel_size, stride)
    return _forward(_LP, x, _pool(x.shape, kernel_size, stride, 0, 1), p)


def lp_pool2d_backward(dy, x, norm_type, kernel_size, stride=None):
    """x**(p-1) * out**(1-p) * dy summed over windows; 0 for a window whose sum is 0 (PyTorch's rule)."""
    x = _input(x)
    p = _norm_type(norm_type)
    if math.isinf(p):
        return (max_pool2d_backward(dy, np.abs(x), kernel_size, stride) * np.sign(x)).astype(x.dtype)
    pool = _pool(x.shape, kernel_size, stride, 0, 1)
    return _backward(_LP, _grad_input(dy, x, pool.out_shape), x, pool, p)


def global_avg_pool2d(x):
    """Mean of each (H, W) plane -> (N, C, 1, 1)."""
    x = _input(x)
    pool = _pool(x.shape, tuple(x.shape[2:]) if min(x.shape[2:]) >= 1 else 1, None, 0, 1)
    return _forward(_GLOBAL, x, pool)


def global_avg_pool2d_backward(dy, x):
    x = _input(x)
    pool = _pool(x.shape, tuple(x.shape[2:]) if min(x.shape[2:]) >= 1 else 1, None, 0, 1)
    return _backward(_GLOBAL, _grad_input(dy, x, pool.out_shape), x, pool)
