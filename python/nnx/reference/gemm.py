"""Reference matrix products."""
from __future__ import annotations

import numpy as np

from .._args import check_ndim, float_array, same_dtype
from ._act import act_forward, act_grad_from_output


def gemm(a, b, c=None, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """alpha * op(a) @ op(b) + beta * c."""
    a, b = float_array(a, "a"), float_array(b, "b")
    c = None if c is None else float_array(c, "c")
    same_dtype(a=a, b=b, c=c)
    check_ndim(a, "a", 2)
    check_ndim(b, "b", 2)
    A = a.T if trans_a else a
    B = b.T if trans_b else b
    if B.shape[0] != A.shape[1]:
        raise ValueError(f"b: expected op(b) with {A.shape[1]} rows, got op(b) of shape {B.shape}")
    out = alpha * (A @ B)
    if c is not None and beta != 0.0:
        out = out + beta * c
    return np.ascontiguousarray(out, dtype=a.dtype)


def gemm_backward(dy, a, b, c=None, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """Y = alpha A B + beta C  =>  dA = alpha dY B^T,  dB = alpha A^T dY,  dC = beta dY (summed where C
    was broadcast)."""
    A = a.T if trans_a else a
    B = b.T if trans_b else b
    dA = alpha * dy @ B.T
    dB = alpha * A.T @ dy
    da = dA.T if trans_a else dA
    db = dB.T if trans_b else dB
    dc = None
    if c is not None:
        g = beta * dy
        c = np.asarray(c)
        while g.ndim > c.ndim:
            g = g.sum(axis=0)
        for ax, size in enumerate(c.shape):
            if size == 1 and g.shape[ax] != 1:
                g = g.sum(axis=ax, keepdims=True)
        dc = np.ascontiguousarray(g)
    return np.ascontiguousarray(da), np.ascontiguousarray(db), dc


def _promoted(a, b):
    """a as rows and b as columns (1-D operands get a unit axis), checked as NumPy's matmul would."""
    a, b = float_array(a, "a"), float_array(b, "b")
    same_dtype(a=a, b=b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul needs at least 1-D operands, got a scalar")
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise ValueError(f"b: expected {a2.shape[-1]} rows to match a of shape {a.shape}, got {b.shape}")
    return a, b, a2, b2


def _sum_to(g, shape):
    """g summed over the axes that broadcasting added or stretched from 1, down to `shape`."""
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for ax, size in enumerate(shape):
        if size == 1 and g.shape[ax] != 1:
            g = g.sum(axis=ax, keepdims=True)
    return g


def matmul(a, b):
    """NumPy's matmul: sum over k of a[..., i, k] b[..., k, j], leading axes broadcast, 1-D operands as a row
    (a) or a column (b) whose axis is dropped from the result."""
    a, b, a2, b2 = _promoted(a, b)
    out = np.matmul(a2, b2)
    if a.ndim == 1:
        out = out[..., 0, :]
    if b.ndim == 1:
        out = out[..., 0]
    return np.asarray(out, dtype=a.dtype, order="C")


def matmul_backward(dy, a, b, *, needs=(True, True)):
    """Y = A B per batch index  =>  dA = dY B^T, dB = A^T dY, each summed over the batch axes its operand
    was broadcast along."""
    a, b, a2, b2 = _promoted(a, b)
    out_rows = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]) + (a2.shape[-2], b2.shape[-1])
    dy2 = np.asarray(dy).reshape(out_rows)
    da = _sum_to(dy2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape) if needs[0] else None
    db = _sum_to(np.swapaxes(a2, -1, -2) @ dy2, b2.shape).reshape(b.shape) if needs[1] else None
    return (None if da is None else np.asarray(da, dtype=a.dtype, order="C"),
            None if db is None else np.asarray(db, dtype=a.dtype, order="C"))


def linear(x, w, b=None, *, activation=None, negative_slope=0.01):
    """y = act(x w^T + b): each output j is a weighted sum of the inputs plus a bias."""
    x, w = float_array(x, "x"), float_array(w, "w")
    same_dtype(x=x, w=w, b=None if b is None else float_array(b, "b"))
    z = x @ w.T
    if b is not None:
        z = z + b
    return np.ascontiguousarray(act_forward(z, activation, negative_slope))


def linear_backward(dy, x, w, b=None, *, activation=None, negative_slope=0.01, y=None,
                    needs=(True, True, True)):
    """Chain rule through z = x w^T + b, y = act(z):
    dz = dy * act'(z) (taken from y), dx = dz w, dw = dz^T x, db = sum over the batch of dz."""
    if activation not in (None, "none"):
        if y is None:
            raise ValueError("y: linear_backward with an activation needs the forward output y")
        dz = dy * act_grad_from_output(y, activation, negative_slope)
    else:
        dz = dy
    dx = dz @ w if needs[0] else None
    dw = dz.T @ x if needs[1] else None
    db = dz.sum(axis=0) if (b is not None and len(needs) > 2 and needs[2]) else None
    c = np.ascontiguousarray
    return (None if dx is None else c(dx), None if dw is None else c(dw), None if db is None else c(db))
