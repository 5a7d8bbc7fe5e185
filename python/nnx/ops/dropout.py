"""Dropout on the C++ kernel (cpp/dropout). Same names and signatures as nnx.reference.dropout.

The mask is a pure function of (seed, flat element index in C order) (cpp/dropout/dropout.h gives the
hash), so the backward can regenerate it instead of storing it, and a result is bitwise reproducible from
the seed on any thread count. The forward can also return it as bits (return_mask=True), which its
backward reads instead of hashing again: nn.Dropout's training step does, as PyTorch keeps its mask. nn.Dropout draws a fresh seed from nnx's generator (nnx.random) per call.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .._backend import _C
from ._checks import check_same_shape, contiguous, empty, float_array, same_dtype

__all__ = ["dropout", "dropout_backward"]

SEED_LIMIT = 1 << 64


def _args(p, training, seed):
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"p: expected a probability (a real number), got {type(p).__name__} {p!r}")
    if not (0.0 <= float(p) <= 1.0) or math.isnan(float(p)):
        raise ValueError(f"p: expected a dropout probability in [0, 1], got {p}")
    if not isinstance(training, bool):
        raise TypeError(f"training: expected True or False, got {type(training).__name__} {training!r}")
    if isinstance(seed, np.ndarray):  # read when the kernel runs (a captured step refills it per call)
        if seed.dtype != np.uint64 or seed.shape != (1,):
            raise ValueError(f"seed: expected an int or a uint64 array of shape (1,), got {seed.dtype} {seed.shape}")
        return float(p), seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__} {seed!r}")
    if not 0 <= int(seed) < SEED_LIMIT:
        raise ValueError(f"seed: expected an int in [0, 2**64), got {seed}")
    return float(p), int(seed)


def _apply(x, p, seed, name):
    out = empty(x.shape, x.dtype, name)
    _C.dropout(contiguous(x, "x").reshape(-1), out.reshape(-1), p, seed)
    return out


def mask_bytes(shape) -> int:
    """Bytes of a saved mask for an array of `shape`: one bit per element."""
    return (math.prod(shape) + 7) // 8


def dropout(x, p=0.5, training=True, seed=0, *, return_mask=False):
    """In training: x * mask / (1 - p), each element kept with probability 1 - p by the (seed, index)
    hash; p = 1 gives x * 0. In evaluation (or p = 0): a copy of x.

    return_mask=True also returns the mask as bits, (y, mask): a uint8 array of ceil(x.size / 8) bytes,
    bit j of byte b set when flat element 8b + j is kept (np.packbits(kept, bitorder="little"); all set in
    evaluation). dropout_backward(..., mask=mask) then reads 1 bit per element instead of hashing again."""
    x = float_array(x, "x")
    p, seed = _args(p, training, seed)
    if not training or p == 0.0:
        y = contiguous(x, "x").copy()
        if not return_mask:
            return y
        mask = np.full(mask_bytes(x.shape), 0xFF, np.uint8)
        if x.size % 8:
            mask[-1] = (1 << (x.size % 8)) - 1
        return y, mask
    if not return_mask:
        return _apply(x, p, seed, "y")
    y = empty(x.shape, x.dtype, "y")
    mask = np.empty(mask_bytes(x.shape), np.uint8)
    _C.dropout_save(contiguous(x, "x").reshape(-1), y.reshape(-1), mask, p, seed)
    return y, mask


def dropout_backward(dy, x, p=0.5, training=True, seed=0, *, mask=None):
    """dx = dy * mask / (1 - p) with the forward's mask (same seed, or the bits it returned as `mask`);
    dy itself in evaluation."""
    dy = float_array(dy, "dy")
    x = float_array(x, "x")
    same_dtype(dy=dy, x=x)
    check_same_shape(x, "x", dy, "dy")
    p, seed = _args(p, training, seed)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != np.uint8:
            raise TypeError(f"mask: expected the uint8 bits from dropout(..., return_mask=True), got dtype {mask.dtype}")
        if mask.shape != (mask_bytes(x.shape),):
            raise ValueError(f"mask: expected shape ({mask_bytes(x.shape)},), one bit per element of x, "
                             f"got {mask.shape}")
    if not training or p == 0.0:
        return contiguous(dy, "dy").copy()
    if mask is None:
        return _apply(dy, p, seed, "dx")
    dx = empty(dy.shape, dy.dtype, "dx")
    _C.dropout_from_mask(contiguous(dy, "dy").reshape(-1), np.ascontiguousarray(mask), dx.reshape(-1), p)
    return dx
