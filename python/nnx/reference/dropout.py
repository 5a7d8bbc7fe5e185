"""Dropout in plain NumPy: the oracle for nnx.ops.dropout, computing the same mask bits.

Element i (flat, C order) is kept when h(seed, i) >= floor(p * 2^32), where with (k0, k1) the low and
high words of splitmix64(seed) and mix32 Wellons' lowbias32 hash,
    h = mix32(mix32(lo32(i) ^ k0) ^ (hi32(i) + k1))        (all arithmetic modulo 2^32)
and the kept elements are scaled by 1 / (1 - p): y = x * mask. The backward is the same mask on dy.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["dropout", "dropout_backward"]

_M64 = (1 << 64) - 1


def _key(seed: int):
    z = (int(seed) + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    z ^= z >> 31
    return np.uint32(z & 0xFFFFFFFF), np.uint32(z >> 32)


def _mix32(v):
    v = v ^ (v >> np.uint32(16))
    v = v * np.uint32(0x7FEB352D)
    v = v ^ (v >> np.uint32(15))
    v = v * np.uint32(0x846CA68B)
    return v ^ (v >> np.uint32(16))


def keep_mask(shape, p: float, seed: int) -> np.ndarray:
    """Boolean array of `shape`: True where dropout(…, p, seed) keeps the element."""
    k0, k1 = _key(seed)
    i = np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.uint64)
    lo = (i & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    hi = (i >> np.uint64(32)).astype(np.uint32)
    h = _mix32(_mix32(lo ^ k0) ^ (hi + k1))
    threshold = np.uint32(min(2**32 - 1, math.floor(p * 2.0**32)))
    return (h >= threshold).reshape(shape)


def _masked(x, p, seed):
    x = np.asarray(x)
    if p == 1.0:
        return np.array(x * x.dtype.type(0), order="C")
    scale = x.dtype.type(1.0 / (1.0 - p))
    m = np.where(keep_mask(x.shape, p, seed), scale, x.dtype.type(0)).astype(x.dtype)
    return np.array(x * m, order="C")


def dropout(x, p=0.5, training=True, seed=0, *, return_mask=False):
    """return_mask=True: also the kept mask as bits, np.packbits(kept, bitorder="little")."""
    x = np.asarray(x)
    if not training or p == 0.0:
        y = np.array(x, order="C")
        kept = np.ones(x.size, bool)
    else:
        y = _masked(x, p, seed)
        kept = keep_mask(x.shape, p, seed).reshape(-1)
    return (y, np.packbits(kept, bitorder="little")) if return_mask else y


def dropout_backward(dy, x, p=0.5, training=True, seed=0, *, mask=None):
    if not training or p == 0.0:
        return np.array(dy, order="C")
    if mask is None:
        return _masked(dy, p, seed)
    dy = np.asarray(dy)
    kept = np.unpackbits(np.asarray(mask), count=dy.size, bitorder="little").astype(bool).reshape(dy.shape)
    scale = dy.dtype.type(0) if p == 1.0 else dy.dtype.type(1.0 / (1.0 - p))
    return np.array(dy * np.where(kept, scale, dy.dtype.type(0)).astype(dy.dtype), order="C")
