"""Batch norm and layer norm on the C++ kernels (cpp/norm). Same names and signatures as
nnx.reference.norm; inputs of any layout, results new C-contiguous arrays.

batch_norm normalises over every axis but 1 of x (N, C, *spatial): in training with this batch's mean and
biased variance (the running statistics, when given, move towards the batch mean and the UNBIASED
variance by `momentum`, in place, as PyTorch does), in evaluation with the running statistics.
Keyword-only extras: activation="relu" fuses a following ReLU (its backward then takes y=, the forward
output, to mask dy); return_stats=True also returns the (mean, invstd) the forward used, which the
backward takes as mean=/invstd= instead of recomputing them from x; needs=(dx, dweight, dbias) skips
gradients nobody uses.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .._backend import _C
from .._args import FLOAT_DTYPES
from ._checks import check_same_shape, contiguous, empty, float_array, same_dtype

__all__ = ["batch_norm", "batch_norm_backward", "layer_norm", "layer_norm_backward"]


def _real(v, name: str, minimum: float | None = None) -> float:
    if type(v) is float and math.isfinite(v) and (minimum is None or v >= minimum):
        return v  # the common case, without the slower numbers.Real check
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
        raise TypeError(f"{name}: expected a finite real number, got {type(v).__name__} {v!r}")
    if minimum is not None and v < minimum:
        raise ValueError(f"{name}: expected a number >= {minimum}, got {v}")
    return float(v)


def _momentum(v):
    """A float, or a float64 array of shape (1,) that the kernel reads when it runs (a captured step refills
    it per call: momentum=None's 1 / num_batches_tracked)."""
    if isinstance(v, np.ndarray):
        if v.dtype != np.float64 or v.shape != (1,):
            raise ValueError(f"momentum: expected a number or a float64 array of shape (1,), got {v.dtype} {v.shape}")
        return v
    return _real(v, "momentum")


def _flag(v, name: str) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {type(v).__name__} {v!r}")
    return bool(v)


def _relu_flag(activation) -> bool:
    if activation is None:
        return False
    if activation == "relu":
        return True
    raise ValueError(f"activation: expected None or 'relu', got {activation!r}")


def _needs(needs) -> tuple:
    if needs is None:
        return (True, True, True)
    if not isinstance(needs, (tuple, list)) or len(needs) != 3:
        raise ValueError(f"needs: expected a tuple of 3 booleans (dx, dweight, dbias), got {needs!r}")
    return tuple(bool(n) for n in needs)


def _plain(a, shape: tuple, dtype) -> bool:
    """Whether `a` is what the kernels take as it is: an ndarray of `shape` and `dtype`, C-contiguous and
    aligned. The layers pass such arrays every step; the general checks cost microseconds, as much as the
    kernel of a 64 x 256 batch norm."""
    if type(a) is not np.ndarray or a.shape != shape or a.dtype != dtype:
        return False
    f = a.flags
    return f.c_contiguous and f.aligned


def _vector(a, name: str, shape: tuple, what: str):
    """An optional per-channel (or per-feature) array of `shape`, C-contiguous; None stays None."""
    if a is None:
        return None
    if type(a) is np.ndarray and a.dtype in FLOAT_DTYPES and _plain(a, shape, a.dtype):
        return a
    a = float_array(a, name)
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape} ({what}), got {a.shape}")
    return contiguous(a, name)


def _bn_input(x):
    x = float_array(x, "x")
    if x.ndim < 2:
        raise ValueError(f"x: expected an array (N, C, *spatial) with at least 2 dimensions, got shape {x.shape}")
    return x


def _nc_s(x: np.ndarray) -> tuple:
    """(N, C, S): the kernels' view of x (N, C, *spatial)."""
    return (x.shape[0], x.shape[1], math.prod(x.shape[2:]))


def _bn_params(x, weight, bias):
    c = x.shape[1]
    if (weight is None or _plain(weight, (c,), x.dtype)) and (bias is None or _plain(bias, (c,), x.dtype)):
        return weight, bias
    what = f"one value per channel of x {x.shape}"
    w = _vector(weight, "weight", (c,), what)
    b = _vector(bias, "bias", (c,), what)
    same_dtype(x=x, weight=w, bias=b)
    return w, b


def _running(a, name: str, x: np.ndarray):
    """A running statistic: an ndarray of x's dtype and shape (C,), updated in place by training."""
    if a is None or (type(a) is np.ndarray and a.shape == (x.shape[1],) and a.dtype == x.dtype):
        return a
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected an ndarray (it is updated in place), got {type(a).__name__}")
    same_dtype(x=x, **{name: float_array(a, name)})
    if a.shape != (x.shape[1],):
        raise ValueError(f"{name}: expected shape ({x.shape[1]},) (one value per channel of x {x.shape}), got {a.shape}")
    return a


def _check_batch(x, training: bool):
    n, c, s = _nc_s(x)
    if training and n * s <= 1 and c > 0:
        raise ValueError(f"x: batch norm in training needs more than 1 value per channel, got shape {x.shape}")


def batch_norm(x, weight=None, bias=None, running_mean=None, running_var=None, training=True, momentum=0.1,
               eps=1e-5, *, activation=None, return_stats=False):
    """y = (x - mean) / sqrt(var + eps) * weight + bias per channel (axis 1), then relu when
    activation="relu". Returns y, or (y, mean, invstd) with return_stats=True."""
    x = _bn_input(x)
    training = _flag(training, "training")
    momentum = _momentum(momentum)
    eps = _real(eps, "eps", 0.0)
    relu = _relu_flag(activation)
    w, b = _bn_params(x, weight, bias)
    rm = _running(running_mean, "running_mean", x)
    rv = _running(running_var, "running_var", x)
    if not training and (rm is None or rv is None):
        raise ValueError("running_mean: evaluation (training=False) needs running_mean and running_var")
    _check_batch(x, training)
    xc = contiguous(x, "x")
    y = empty(x.shape, x.dtype, "y")
    c = x.shape[1]
    mean, invstd = np.empty(c, x.dtype), np.empty(c, x.dtype)
    # The kernel updates the running statistics in place; a view it cannot address gets a copy written back.
    rm_k = rm if rm is None or (rm.flags.c_contiguous and rm.flags.aligned and rm.flags.writeable) else rm.copy()
    rv_k = rv if rv is None or (rv.flags.c_contiguous and rv.flags.aligned and rv.flags.writeable) else rv.copy()
    for name, orig, k in (("running_mean", rm, rm_k), ("running_var", rv, rv_k)):
        if training and orig is not None and k is not orig and not orig.flags.writeable:
            raise ValueError(f"{name}: expected a writeable array (training updates it in place)")
    v = _nc_s(x)
    _C.batch_norm(xc.reshape(v), y.reshape(v), w, b, rm_k, rv_k, training, momentum, eps, relu, mean, invstd)
    if training:
        if rm_k is not rm:
            rm[...] = rm_k
        if rv_k is not rv:
            rv[...] = rv_k
    return (y, mean, invstd) if return_stats else y


def _bn_backward_plain(dy, x, weight, bias, running_mean, running_var, training, momentum, eps, activation, y, mean,
                       invstd, needs):
    """batch_norm_backward for the arguments the BatchNorm layers pass every step (plain C-contiguous arrays of
    x's dtype, the forward's statistics, Python bools and floats), without the general checks (a third of the
    Python cost of a 64 x 256 backward, as much as its kernel); None for any other call."""
    if (type(x) is not np.ndarray or x.ndim < 2 or x.dtype not in FLOAT_DTYPES or running_mean is not None
            or running_var is not None or type(training) is not bool or type(momentum) is not float
            or not math.isfinite(momentum) or type(eps) is not float or not 0.0 <= eps < math.inf
            or needs is not None and (type(needs) is not tuple or len(needs) != 3
                                      or not all(type(n) is bool for n in needs))):
        return None
    dt, c = x.dtype, x.shape[1]
    f = x.flags
    if not (f.c_contiguous and f.aligned and _plain(dy, x.shape, dt) and _plain(mean, (c,), dt)
            and _plain(invstd, (c,), dt) and (weight is None or _plain(weight, (c,), dt))
            and (bias is None or _plain(bias, (c,), dt))):
        return None
    if activation is None:
        y = None
    elif activation == "relu" and _plain(y, x.shape, dt):
        y = y.reshape(_nc_s(x))
    else:
        return None
    v = _nc_s(x)
    if training and v[0] * v[2] <= 1 and c > 0:
        return None  # the general path raises
    nx, nw, nb = needs or (True, True, True)
    dx = empty(x.shape, dt, "dx") if nx else None
    dw = np.empty(c, dt) if nw and weight is not None else None
    db = np.empty(c, dt) if nb and bias is not None else None
    _C.batch_norm_backward(dy.reshape(v), x.reshape(v), y, None if dx is None else dx.reshape(v), weight, mean, invstd,
                           training, dw, db)
    return dx, dw, db


def batch_norm_backward(dy, x, weight=None, bias=None, running_mean=None, running_var=None, training=True,
                        momentum=0.1, eps=1e-5, *, activation=None, y=None, mean=None, invstd=None, needs=None):
    """(dx, dweight, dbias) of batch_norm (None for an absent weight/bias or an unneeded gradient).
    Never touches the running statistics. Training: dx = weight * invstd * (g - mean(g) - xhat * mean(g *
    xhat)) with g = dy (masked by y > 0 for activation="relu"); evaluation: dx = weight * invstd * g."""
    fast = _bn_backward_plain(dy, x, weight, bias, running_mean, running_var, training, momentum, eps, activation, y,
                              mean, invstd, needs)
    if fast is not None:
        return fast
    x = _bn_input(x)
    dy = float_array(dy, "dy")
    same_dtype(dy=dy, x=x)
    check_same_shape(x, "x", dy, "dy")
    training = _flag(training, "training")
    _momentum(momentum)
    eps = _real(eps, "eps", 0.0)
    relu = _relu_flag(activation)
    w, b = _bn_params(x, weight, bias)
    rm, rv = _running(running_mean, "running_mean", x), _running(running_var, "running_var", x)
    c = x.shape[1]
    if relu:
        if y is None:
            raise ValueError("y: batch_norm_backward with activation='relu' needs the forward output y")
        y = float_array(y, "y")
        same_dtype(x=x, y=y)
        check_same_shape(x, "x", y, "y")
        y = contiguous(y, "y").reshape(_nc_s(x))
    else:
        y = None
    if (mean is None) != (invstd is None):
        raise ValueError("mean: pass both mean and invstd (the forward's return_stats) or neither")
    if mean is None:
        if training:
            _check_batch(x, True)
            _, mean, invstd = batch_norm(x, None, None, None, None, True, 0.0, eps, return_stats=True)
        else:
            if rm is None or rv is None:
                raise ValueError("running_mean: evaluation (training=False) needs running_mean and running_var")
            mean = np.ascontiguousarray(rm)
            invstd = (1.0 / np.sqrt(rv.astype(np.float64) + eps)).astype(x.dtype)
    what = f"one value per channel of x {x.shape}"
    mean = _vector(mean, "mean", (c,), what)
    invstd = _vector(invstd, "invstd", (c,), what)
    same_dtype(x=x, mean=mean, invstd=invstd)
    nx, nw, nb = _needs(needs)
    dx = empty(x.shape, x.dtype, "dx") if nx else None
    dw = np.empty(c, x.dtype) if nw and w is not None else None
    db = np.empty(c, x.dtype) if nb and b is not None else None
    v = _nc_s(x)
    _C.batch_norm_backward(contiguous(dy, "dy").reshape(v), contiguous(x, "x").reshape(v), y,
                           None if dx is None else dx.reshape(v), w, mean, invstd, training, dw, db)
    return dx, dw, db


def _normalized(x, normalized_shape) -> tuple:
    if type(normalized_shape) is int:  # the common cases, without the abstract-base-class tests below
        shape = (normalized_shape,)
    elif type(normalized_shape) is tuple and len(normalized_shape) == 1 and type(normalized_shape[0]) is int:
        shape = normalized_shape
    elif isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
        shape = (int(normalized_shape),)
    elif isinstance(normalized_shape, (tuple, list)) and all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in normalized_shape):
        shape = tuple(int(s) for s in normalized_shape)
    else:
        raise TypeError(f"normalized_shape: expected an int or a tuple of ints, got {normalized_shape!r}")
    if not shape or x.shape[x.ndim - len(shape):] != shape or len(shape) > x.ndim:
        raise ValueError(f"normalized_shape: expected the trailing dimensions of x {x.shape}, got {shape}")
    return shape


def _dy_rows(dy: np.ndarray, normalized_ndim: int, rd: tuple) -> np.ndarray:
    """dy as layer_norm_backward's rows: (R, D) C-contiguous, or the one row (1, D) that every row repeats where
    all of dy's leading strides are 0 (the gradient of the output's sum or mean, a broadcast), which the kernel
    reads for each row instead of a copy of R rows."""
    lead = dy.ndim - normalized_ndim
    if rd[0] > 1 and lead > 0 and type(dy) is np.ndarray and not any(dy.strides[:lead]):
        return contiguous(dy[(0,) * lead], "dy").reshape(1, rd[1])
    return _rows(contiguous(dy, "dy"), rd)


def _ln_plain_rows(x, normalized_shape, weight, bias):
    """(rows, features) when x is a plain array (C-contiguous, 2-D, or a batch of sequences (N, T, D) and the
    like) normalised over its last axis and weight, bias are None or plain vectors of its dtype: what LayerNorm
    passes every step, taken without _ln_args's general checks (2 us of the 9 that ops.layer_norm_backward's
    Python cost on 64 x 256; 25 us on (32, 64, 128), whose dy the general path also copied); else None."""
    if type(x) is not np.ndarray or x.ndim < 2 or x.dtype not in FLOAT_DTYPES:
        return None
    d = x.shape[-1]
    if not (type(normalized_shape) is int and normalized_shape == d
            or type(normalized_shape) is tuple and normalized_shape == (d,) and type(normalized_shape[0]) is int):
        return None
    f = x.flags
    if not (f.c_contiguous and f.aligned) or d == 0:
        return None
    if weight is not None and not _plain(weight, (d,), x.dtype) or bias is not None and not _plain(bias, (d,), x.dtype):
        return None
    return x.shape if x.ndim == 2 else (x.size // d, d)


def _ln_args(x, normalized_shape, weight, bias):
    x = float_array(x, "x")
    shape = _normalized(x, normalized_shape)
    what = "normalized_shape"
    w = _vector(weight, "weight", shape, what)
    b = _vector(bias, "bias", shape, what)
    if (w is not None and w.dtype != x.dtype) or (b is not None and b.dtype != x.dtype):
        same_dtype(x=x, weight=w, bias=b)  # raises, naming them
    # math.prod: np.prod costs microseconds per call, as much as the kernel on a 64 x 256 batch.
    d = math.prod(shape)
    r = math.prod(x.shape[:x.ndim - len(shape)])
    return x, shape, w, b, (r, d)


def _rows(a, rd: tuple):
    """a as the kernels' (rows, features) view; a itself where it already is one (a reshape costs 0.1 us)."""
    return a if a.shape == rd else a.reshape(rd)


def _flat(a):
    return None if a is None else (a if a.ndim == 1 else a.reshape(-1))


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5, *, return_stats=False):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the trailing `normalized_shape` axes of x
    (mean and biased variance per leading index). Returns y, or (y, mean, invstd) with return_stats=True
    (mean, invstd shaped like x's leading axes)."""
    rd = _ln_plain_rows(x, normalized_shape, weight, bias)
    if rd is not None and type(eps) is float and 0.0 <= eps < math.inf:  # LayerNorm's arguments: no more checks
        y, mean, invstd = empty(x.shape, x.dtype, "y"), np.empty(rd[0], x.dtype), np.empty(rd[0], x.dtype)
        if x.ndim == 2:
            _C.layer_norm(x, y, weight, bias, eps, mean, invstd)
        else:  # rows of a batch of sequences: the statistics shaped like its leading axes
            _C.layer_norm(x.reshape(rd), y.reshape(rd), weight, bias, eps, mean, invstd)
            mean, invstd = mean.reshape(x.shape[:-1]), invstd.reshape(x.shape[:-1])
        return (y, mean, invstd) if return_stats else y
    x, shape, w, b, rd = _ln_args(x, normalized_shape, weight, bias)
    eps = _real(eps, "eps", 0.0)
    y = empty(x.shape, x.dtype, "y")
    lead = x.shape[:x.ndim - len(shape)]
    mean, invstd = np.empty(lead, x.dtype), np.empty(lead, x.dtype)
    _C.layer_norm(_rows(contiguous(x, "x"), rd), _rows(y, rd), _flat(w), _flat(b), eps, _flat(mean), _flat(invstd))
    return (y, mean, invstd) if return_stats else y


def layer_norm_backward(dy, x, normalized_shape, weight=None, bias=None, eps=1e-5, *, mean=None, invstd=None,
                        needs=None):
    """(dx, dweight, dbias) of layer_norm: per row dx = invstd * (g - mean(g) - xhat * mean(g * xhat)) with
    g = dy * weight; dweight = sum over rows of dy * xhat, dbias = sum of dy."""
    rd = _ln_plain_rows(x, normalized_shape, weight, bias)
    if rd is not None and type(eps) is float and 0.0 <= eps < math.inf:
        nx, nw, nb = _needs(needs)
        dw = np.empty(rd[1], x.dtype) if nw and weight is not None else None
        db = np.empty(rd[1], x.dtype) if nb and bias is not None else None
        if x.ndim == 2 and _plain(dy, rd, x.dtype) and _plain(mean, rd[:1], x.dtype) and _plain(invstd, rd[:1], x.dtype):
            # The arrays LayerNorm's backward passes (plain rows and statistics): straight to the kernel.
            dx = empty(rd, x.dtype, "dx") if nx else None
            _C.layer_norm_backward(dy, x, dx, weight, mean, invstd, dw, db)
            return dx, dw, db
        lead = x.shape[:-1]
        if (type(dy) is np.ndarray and dy.shape == x.shape and dy.dtype == x.dtype and _plain(mean, lead, x.dtype)
                and _plain(invstd, lead, x.dtype)):
            # A batch of sequences, or a dy that is a view (the gradient of a mean over positions arrives
            # broadcast): the same kernel on the rows, dy made contiguous once; one row of dy shared by all rows
            # (the gradient of the output's sum or mean: every leading stride 0) passed as that row alone.
            dx = empty(x.shape, x.dtype, "dx") if nx else None
            _C.layer_norm_backward(_dy_rows(dy, 1, rd), x.reshape(rd), None if dx is None else dx.reshape(rd), weight,
                                   mean.reshape(-1), invstd.reshape(-1), dw, db)
            return dx, dw, db
    x, shape, w, b, rd = _ln_args(x, normalized_shape, weight, bias)
    dy = float_array(dy, "dy")
    same_dtype(dy=dy, x=x)
    check_same_shape(x, "x", dy, "dy")
    eps = _real(eps, "eps", 0.0)
    lead = x.shape[:x.ndim - len(shape)]
    if (mean is None) != (invstd is None):
        raise ValueError("mean: pass both mean and invstd (the forward's return_stats) or neither")
    if mean is None:
        _, mean, invstd = layer_norm(x, shape, None, None, eps, return_stats=True)
    mean = _vector(mean, "mean", lead, "x's leading axes")
    invstd = _vector(invstd, "invstd", lead, "x's leading axes")
    same_dtype(x=x, mean=mean, invstd=invstd)
    nx, nw, nb = _needs(needs)
    dx = empty(x.shape, x.dtype, "dx") if nx else None
    dw = np.empty(shape, x.dtype) if nw and w is not None else None
    db = np.empty(shape, x.dtype) if nb and b is not None else None
    _C.layer_norm_backward(_dy_rows(dy, len(shape), rd), _rows(contiguous(x, "x"), rd),
                           None if dx is None else _rows(dx, rd), _flat(w), _flat(mean), _flat(invstd), _flat(dw),
                           _flat(db))
    return dx, dw, db
