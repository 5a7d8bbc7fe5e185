"""Matrix products: gemm and the linear (fully connected) layer, on the packed C++ GEMM."""
from __future__ import annotations

import math

import numpy as np

from .._backend import _C
from ._fused import activation_backward_from_output
from .._args import (FLOAT_DTYPES, SMALL_ALLOC, check_ndim, constant_ones, empty, float_array, kernel_ready, same_dtype,
                     unbroadcast)
from ._checks import contiguous

# Activations the fused epilogue of linear / conv2d takes, with their codes: defined once in C++
# (cpp/common/epilogue.h, Act) and exported by the bindings.
ACTIVATIONS = {None: 0, **_C.EPILOGUE_ACTIVATIONS}


def activation_code(activation) -> int:
    try:
        return ACTIVATIONS[activation]
    except (KeyError, TypeError):
        names = ", ".join(repr(a) for a in ACTIVATIONS)
        raise ValueError(f"activation: expected one of {names}, got {activation!r}") from None


def _op(x: np.ndarray, trans: bool) -> np.ndarray:
    return x.T if trans else x


def gemm(a, b, c=None, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """alpha * op(a) @ op(b) + beta * c, where op transposes when trans_a / trans_b is set.

    a and b may have any strides (transposed views cost nothing); c, when given, must broadcast to the
    result's shape. Returns a new C-contiguous array.
    """
    if c is None and type(a) is np.ndarray and type(b) is np.ndarray:
        # The common call (two arrays, no c) straight to the extension, which makes the result (_C.matmul): a
        # 64 x 64 x 64 product takes about 3 us, and the checks below about 2 more. What it refuses (other
        # dtypes, shapes, unaligned data, results past SMALL_ALLOC) takes the general path, which copies what
        # the kernel cannot read or says what is wrong.
        try:
            return _C.matmul(a.T if trans_a else a, b.T if trans_b else b, alpha, SMALL_ALLOC)
        except (TypeError, ValueError):
            pass
    a = float_array(a, "a")
    b = float_array(b, "b")
    c = None if c is None else float_array(c, "c")
    dtype = same_dtype(a=a, b=b, c=c)
    check_ndim(a, "a", 2)
    check_ndim(b, "b", 2)
    opa, opb = _op(a, trans_a), _op(b, trans_b)
    m, k = opa.shape
    if opb.shape[0] != k:
        raise ValueError(
            f"b: expected op(b) with {k} rows to match op(a) of shape {opa.shape}, got op(b) of shape {opb.shape}"
        )
    n = opb.shape[1]
    if c is not None:
        _check_c(c, m, n)
    out = empty((m, n), dtype, "y")
    use_c = c is not None and beta != 0.0
    if use_c:
        out[...] = c
    _C.gemm(kernel_ready(opa), kernel_ready(opb), out, float(alpha), float(beta) if use_c else 0.0)
    return out


def _check_c(c: np.ndarray, m: int, n: int) -> None:
    """c must broadcast to the (m, n) result (checked even when beta == 0, where c goes unused)."""
    if c.ndim > 2 or any(s not in (1, t) for s, t in zip(c.shape[::-1], (n, m))):
        raise ValueError(f"c: expected a shape that broadcasts to ({m}, {n}), got {c.shape}")


def gemm_backward(dy, a, b, c=None, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """Gradients (da, db, dc) of gemm; dc is None when c is None (and summed over broadcast axes)."""
    dy = float_array(dy, "dy")
    a = float_array(a, "a")
    b = float_array(b, "b")
    c = None if c is None else float_array(c, "c")
    same_dtype(dy=dy, a=a, b=b, c=c)
    check_ndim(dy, "dy", 2)
    check_ndim(a, "a", 2)
    check_ndim(b, "b", 2)
    opa, opb = _op(a, trans_a), _op(b, trans_b)
    if opb.shape[0] != opa.shape[1]:
        raise ValueError(f"b: expected op(b) with {opa.shape[1]} rows to match op(a) of shape {opa.shape}, "
                         f"got op(b) of shape {opb.shape}")
    if c is not None:
        _check_c(c, opa.shape[0], opb.shape[1])
    if dy.shape != (opa.shape[0], opb.shape[1]):
        raise ValueError(f"dy: expected shape {(opa.shape[0], opb.shape[1])}, got {dy.shape}")
    # d op(a) = alpha dy op(b)^T ; d op(b) = alpha op(a)^T dy; transposing op back is a free view.
    d_opa = gemm(dy, opb, trans_b=True, alpha=alpha)
    d_opb = gemm(opa, dy, trans_a=True, alpha=alpha)
    da = np.ascontiguousarray(d_opa.T) if trans_a else d_opa
    db = np.ascontiguousarray(d_opb.T) if trans_b else d_opb
    dc = None
    if c is not None:
        g = beta * dy
        # Undo broadcasting: sum over the axes c was stretched along.
        if c.ndim < 2:
            g = g.sum(axis=tuple(range(2 - c.ndim)))
        for ax, size in enumerate(c.shape):
            if size == 1 and g.shape[ax] != 1:
                g = g.sum(axis=ax, keepdims=True)
        dc = np.ascontiguousarray(g, dtype=dy.dtype)
    return da, db, dc


def _matmul_operands(a, b):
    """(a, b, a2, b2, batch): the operands as float arrays, then as NumPy's matmul sees them (a 1-D a as one row,
    a 1-D b as one column), and the broadcast shape of their leading (batch) axes; clear errors for what matmul
    refuses."""
    a, b = float_array(a, "a"), float_array(b, "b")
    same_dtype(a=a, b=b)
    for name, x in (("a", a), ("b", b)):
        if x.ndim == 0:
            raise ValueError(f"{name}: matmul needs at least 1-D operands, got a scalar (multiply with * instead)")
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    if b2.shape[-2] != a2.shape[-1]:
        raise ValueError(f"b: expected {a2.shape[-1]} rows (a's last axis) to match a of shape {a.shape}, "
                         f"got b of shape {b.shape}")
    try:
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    except ValueError:
        raise ValueError(f"b: its leading axes {b2.shape[:-2]} do not broadcast with a's {a2.shape[:-2]} "
                         f"(a of shape {a.shape}, b of shape {b.shape})") from None
    return a, b, a2, b2, batch


def _batched_product(a2, b2, batch: tuple) -> np.ndarray:
    """batch + (m, n) products a2 @ b2 of operands already broadcast-compatible: one GEMM when only a has
    leading axes and its rows are one matrix (a layer applied to every position of a sequence), else one
    product per batch index (the C++ loop shares them between threads)."""
    m, k, n = a2.shape[-2], a2.shape[-1], b2.shape[-1]
    if not batch:
        return gemm(a2, b2)
    if b2.ndim == 2 and a2.flags.c_contiguous:
        return gemm(a2.reshape(math.prod(a2.shape[:-1]), k), b2).reshape(batch + (m, n))
    count = math.prod(batch)
    a3 = kernel_ready(np.broadcast_to(a2, batch + (m, k)).reshape(count, m, k))
    b3 = kernel_ready(np.broadcast_to(b2, batch + (k, n)).reshape(count, k, n))
    out = empty((count, m, n), a2.dtype, "y")
    _C.matmul_batch(a3, b3, out, 1.0)
    return out.reshape(batch + (m, n))


def matmul(a, b):
    """a @ b with NumPy's (and torch.matmul's) rules, on the packed GEMM: 2-D operands are a matrix product,
    a 1-D a is a row and a 1-D b a column (their added axis dropped from the result), and leading axes are
    a batch of products, broadcast against each other. float32 or float64, one dtype; a new C-contiguous
    array."""
    if type(a) is np.ndarray and type(b) is np.ndarray and a.ndim == 2 and b.ndim == 2:
        try:  # the common 2-D call straight to the extension (see gemm)
            return _C.matmul(a, b, 1.0, SMALL_ALLOC)
        except (TypeError, ValueError):
            pass
    elif (type(a) is np.ndarray and type(b) is np.ndarray and a.ndim == 3 and b.ndim == 3 and a.dtype is b.dtype
          and a.dtype in FLOAT_DTYPES and a.shape[0] == b.shape[0] and a.shape[2] == b.shape[1]
          and a.flags.aligned and b.flags.aligned):
        # A batch of products with one batch axis, as attention runs it: straight to the kernel, past the
        # general path's broadcasting (17 of 40 us for 32 products of 16 x 64 by 64 x 16).
        out = empty((a.shape[0], a.shape[1], b.shape[2]), a.dtype, "y")
        _C.matmul_batch(a, b, out, 1.0)
        return out
    a, b, a2, b2, batch = _matmul_operands(a, b)
    out = _batched_product(a2, b2, batch)
    if a.ndim == 1:
        out = out[..., 0, :]
    if b.ndim == 1:
        out = out[..., 0]
    return out if out.flags.c_contiguous else np.array(out, order="C")


def matmul_backward(dy, a, b, *, needs=(True, True)):
    """(da, db) of matmul: da = dy @ b^T and db = a^T @ dy, each summed over the batch axes its operand was
    broadcast along; `needs` skips a gradient nobody uses (None in its place)."""
    a, b, a2, b2, batch = _matmul_operands(a, b)
    dy = float_array(dy, "dy")
    same_dtype(dy=dy, a=a)
    shape = batch + ((a2.shape[-2],) if a.ndim > 1 else ()) + ((b2.shape[-1],) if b.ndim > 1 else ())
    if dy.shape != shape:
        raise ValueError(f"dy: expected shape {shape} (that of a @ b), got {dy.shape}")
    dy2 = dy.reshape(batch + (a2.shape[-2], b2.shape[-1]))  # the dropped axes back (a view)
    da = db = None
    if needs[0]:
        da = _shaped(unbroadcast(_batched_product(dy2, np.swapaxes(b2, -1, -2), batch), a2.shape), a.shape)
    if needs[1]:
        if b2.ndim == 2 and batch and a2.shape[:-2] == batch:
            # b shared by the whole batch: its gradient sums over every row of every product, one GEMM deep. A dy
            # that is not contiguous (handed back through a transpose, as attention's k^T) is copied for it: a
            # product per batch index and their sum took twice as long (32 of 128 x 64 x 128, 1 thread).
            rows = math.prod(a2.shape[:-1])
            dy2 = contiguous(dy2, "dy")
            db = gemm(a2.reshape(rows, a2.shape[-1]), dy2.reshape(rows, dy2.shape[-1]), trans_a=True)
        else:
            db = unbroadcast(_batched_product(np.swapaxes(a2, -1, -2), dy2, batch), b2.shape)
        db = _shaped(db, b.shape)
    return da, db


def _shaped(g: np.ndarray, shape: tuple) -> np.ndarray:
    # The array itself when it has the shape (a gradient that is not a view can become a leaf's .grad as it is).
    g = g if g.shape == shape else g.reshape(shape)
    return g if g.flags.c_contiguous else np.array(g, order="C")


def _check_linear(x, w, b):
    # Fast path for what the layers pass every step (float ndarrays of matching shapes): one expression
    # instead of the general checks below, which then only run to build the error message or convert.
    if (type(x) is np.ndarray and type(w) is np.ndarray and x.ndim == 2 and w.ndim == 2
            and x.dtype is w.dtype and x.dtype in FLOAT_DTYPES and w.shape[1] == x.shape[1]
            and (b is None or (type(b) is np.ndarray and b.dtype is x.dtype and b.shape == (w.shape[0],)))):
        return x, w, b
    x = float_array(x, "x")
    w = float_array(w, "w")
    b = None if b is None else float_array(b, "b")
    same_dtype(x=x, w=w, b=b)
    check_ndim(x, "x", 2, "batch x in_features")
    check_ndim(w, "w", 2, "out_features x in_features")
    if w.shape[1] != x.shape[1]:
        raise ValueError(
            f"w: expected shape (out_features, {x.shape[1]}) to match x of shape {x.shape}, got {w.shape}"
        )
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"b: expected shape ({w.shape[0]},) (one bias per output), got {b.shape}")
    return x, w, b


def linear(x, w, b=None, *, activation=None, negative_slope=0.01):
    """y = act(x @ w.T + b) with w shaped (out_features, in_features), as torch.nn.functional.linear.

    The bias and the optional activation ('relu', 'leaky_relu', 'sigmoid', 'tanh') are applied by the
    GEMM's epilogue while each output tile is still in cache.
    """
    x, w, b = _check_linear(x, w, b)
    act = activation_code(activation)
    out = empty((x.shape[0], w.shape[0]), x.dtype, "y")
    bias = None if b is None else contiguous(b)
    _C.gemm(kernel_ready(x), kernel_ready(w).T, out, 1.0, 0.0, bias, False, act, float(negative_slope))
    return out


def linear_backward(dy, x, w, b=None, *, activation=None, negative_slope=0.01, y=None,
                    needs=(True, True, True)):
    """(dx, dw, db) of linear. With an activation, `y` must be the forward output (the activation's
    gradient is taken from it); `needs` skips gradients nobody uses (db is None when b is None)."""
    x, w, b = _check_linear(x, w, b)
    dy = float_array(dy, "dy")
    same_dtype(dy=dy, x=x)
    if dy.shape != (x.shape[0], w.shape[0]):
        raise ValueError(f"dy: expected shape {(x.shape[0], w.shape[0])}, got {dy.shape}")
    act = activation_code(activation)
    if act:
        if y is None:
            raise ValueError("y: linear_backward with an activation needs the forward output y")
        y = float_array(y, "y")
        if y.shape != dy.shape:
            raise ValueError(f"y: expected shape {dy.shape}, got {y.shape}")
        dy = activation_backward_from_output(dy, y, activation, negative_slope)
    dy = kernel_ready(dy)
    dx = dw = db = None
    if needs[0]:
        dx = empty(x.shape, x.dtype, "dx")
        _C.gemm(dy, kernel_ready(w), dx, 1.0, 0.0)
    if needs[1]:
        dw = empty(w.shape, x.dtype, "dw")
        _C.gemm(dy.T, kernel_ready(x), dw, 1.0, 0.0)
    if b is not None and len(needs) > 2 and needs[2]:
        db = _column_sum(dy)
    return dx, dw, db


def _column_sum(dy: np.ndarray) -> np.ndarray:
    """Sum over the batch with the same order for any thread count: a GEMM of ones^T . dy."""
    ones = constant_ones((1, dy.shape[0]), dy.dtype)
    out = empty(dy.shape[1], dy.dtype, "db")  # its own array (not a view), so it can become a .grad as it is
    _C.gemm(ones, dy, out.reshape(1, -1), 1.0, 0.0)
    return out
