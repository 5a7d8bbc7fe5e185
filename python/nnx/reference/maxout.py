"""Maxout in plain NumPy: the oracle for nnx.ops.maxout, written as the definition reads."""
from __future__ import annotations

import numpy as np

__all__ = ["maxout", "maxout_backward"]


def _pieces(x, pieces, axis):
    """The list of `pieces` arrays: piece j holds the features c * pieces + j along axis, for every c."""
    if x.shape[axis] % pieces:
        raise ValueError(f"pieces: the size of axis {axis} of x ({x.shape[axis]}) must be a multiple of "
                         f"pieces={pieces}")
    return [np.take(x, np.arange(j, x.shape[axis], pieces), axis=axis) for j in range(pieces)]


def maxout(x, pieces, axis=1, *, return_indices=False):
    """y = max_j piece_j, element by element; the index of the first piece reaching the maximum."""
    parts = _pieces(np.asarray(x), int(pieces), axis)
    y = parts[0].copy()
    idx = np.zeros(y.shape, dtype=np.int64)
    for j in range(1, len(parts)):
        better = parts[j] > y  # strict: on ties the earlier piece keeps it
        y = np.where(better, parts[j], y)
        idx = np.where(better, j, idx)
    return (y, idx) if return_indices else y


def maxout_backward(dy, x, pieces, axis=1, *, indices=None):
    """dL/dx = dL/dy on the piece that was the maximum, 0 on the others."""
    x = np.asarray(x)
    k = int(pieces)
    if indices is None:
        _, indices = maxout(x, k, axis, return_indices=True)
    dx = np.zeros_like(x)
    a = axis % x.ndim
    for j in range(k):
        sl = [slice(None)] * x.ndim
        sl[a] = slice(j, None, k)
        dx[tuple(sl)] = np.where(indices == j, dy, 0)
    return dx
