"""Maxout (Goodfellow et al., 2013): the maximum over groups of `pieces` consecutive features. Same
names and signatures as nnx.reference.maxout.

The forward and the backward run on the C++ kernels (cpp/maxout): one pass over x for y, and one for dx
that finds each winning piece again from x (as max pooling does), so nothing is stored between them.
`return_indices=True` also hands back the winners (NumPy, from x and y) for a caller that wants them;
a backward given those indices is a NumPy scatter.
"""
from __future__ import annotations

import numpy as np

from .._backend import _C
from ._checks import check_axis, check_same_shape, contiguous, empty, float_array, same_dtype, to_int

__all__ = ["maxout", "maxout_backward"]


def _grouped(x, pieces, axis, name="x"):
    x = contiguous(float_array(x, name), name)
    if x.ndim < 1:
        raise ValueError(f"{name}: expected at least 1 axis, got a 0-d array")
    k = to_int(pieces, "pieces", minimum=1)
    a = check_axis(axis, x.ndim) % x.ndim
    if x.shape[a] % k:
        raise ValueError(f"pieces: the size of axis {a} of {name} ({x.shape[a]}) must be a multiple of pieces={k}")
    shape = x.shape[:a] + (x.shape[a] // k, k) + x.shape[a + 1:]
    return x, x.reshape(shape), a, k


def maxout(x, pieces, axis=1, *, return_indices=False):
    """y[..., c, ...] = max over j < pieces of x[..., c * pieces + j, ...] along `axis`; y has
    x.shape[axis] / pieces there. With return_indices also the chosen j (int64; the first on ties)."""
    x, g, a, k = _grouped(x, pieces, axis)
    y = empty(g.shape[:a + 1] + g.shape[a + 2:], x.dtype, "y")
    _C.maxout(x, y, k, a)
    if not return_indices:
        return y
    # The first piece equal to y (a NaN y comes only from piece 0, and matches nothing: argmax gives 0).
    idx = np.argmax(g == np.expand_dims(y, a + 1), axis=a + 1)
    return y, idx.astype(np.int64, copy=False)


def maxout_backward(dy, x, pieces, axis=1, *, indices=None):
    """dx: dy routed to the piece each output took (found again from x unless `indices` is given)."""
    x, g, a, k = _grouped(x, pieces, axis)
    dy = float_array(dy, "dy")
    same_dtype(dy=dy, x=x)
    out_shape = g.shape[:a + 1] + g.shape[a + 2:]
    if dy.shape != out_shape:
        raise ValueError(f"dy: expected shape {out_shape} (the maxout of x {x.shape}), got {dy.shape}")
    if indices is None:
        dx = empty(x.shape, x.dtype, "dx")
        _C.maxout_backward(contiguous(dy, "dy"), x, dx, k, a)
        return dx
    indices = np.asarray(indices)
    check_same_shape(dy, "dy", indices, "indices")
    if indices.dtype.kind not in "iu" or (indices.size and (indices.min() < 0 or indices.max() >= k)):
        raise ValueError(f"indices: expected integers in [0, {k}) from maxout(..., return_indices=True)")
    dx = np.zeros(g.shape, dtype=x.dtype)
    np.put_along_axis(dx, np.expand_dims(indices, a + 1), np.expand_dims(dy, a + 1), axis=a + 1)
    return dx.reshape(x.shape)
