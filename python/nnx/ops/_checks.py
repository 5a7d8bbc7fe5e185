"""Argument normalisation shared by the ops: dtype policy, shapes, clear errors.

Every error names the argument, what was expected and what came, so a user can fix the call without
reading the source.
"""
from __future__ import annotations

import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_array(x, name: str) -> np.ndarray:
    """Returns `x` as a float32/float64 ndarray (no copy when it already is one)."""
    if not isinstance(x, np.ndarray):
        if hasattr(x, "data") and isinstance(getattr(x, "data"), np.ndarray):  # nnx.Tensor
            x = x.data
        else:
            try:
                x = np.asarray(x)
            except Exception as exc:  # noqa: BLE001 - report any conversion failure uniformly
                raise TypeError(f"{name}: expected a float32 or float64 array, got {type(x).__name__}") from exc
            if x.dtype.kind in "iub":  # python lists of numbers: accept as float64
                x = x.astype(np.float64)
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected a float32 or float64 array, got dtype {x.dtype}")
    return x


def same_dtype(**arrays: np.ndarray) -> np.dtype:
    """All arrays share one floating dtype; mixing float32 and float64 is a TypeError naming both."""
    items = [(k, v) for k, v in arrays.items() if v is not None]
    first_name, first = items[0]
    for name, arr in items[1:]:
        if arr.dtype != first.dtype:
            raise TypeError(
                f"{first_name} is {first.dtype} but {name} is {arr.dtype}: nnx does not mix float32 "
                f"and float64 in one call; convert one with .astype()"
            )
    return first.dtype


def check_ndim(x: np.ndarray, name: str, ndim: int, what: str = "") -> None:
    if x.ndim != ndim:
        hint = f" ({what})" if what else ""
        raise ValueError(f"{name}: expected a {ndim}-D array{hint}, got shape {x.shape}")


def kernel_ready(x: np.ndarray) -> np.ndarray:
    """An array the kernels can address: strides in whole items and aligned data, else a contiguous copy."""
    # NumPy's ALIGNED flag is exactly "data pointer and every stride are multiples of the item size",
    # and reading it is several times cheaper than x.ctypes.data (this runs on every call).
    # np.array copies into a fresh (aligned) buffer; ascontiguousarray would hand back an unaligned but
    # contiguous x unchanged.
    return x if x.flags.aligned else np.array(x, order="C")


def contiguous(x: np.ndarray) -> np.ndarray:
    """C-contiguous, aligned array (copy only when needed)."""
    x = np.ascontiguousarray(x)
    return x if x.flags.aligned else x.copy()


def to_int(v, name: str, minimum: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(v).__name__} {v!r}")
    v = int(v)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {v}")
    return v


def pair(v, name: str, minimum: int | None = None) -> tuple[int, int]:
    """An int or a pair of ints -> (int, int), as PyTorch accepts for stride/padding/dilation."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name}: expected an int or a pair of ints, got {v!r}")
        return (to_int(v[0], name, minimum), to_int(v[1], name, minimum))
    x = to_int(v, name, minimum)
    return (x, x)


def check_reduction(reduction: str) -> str:
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction: expected 'mean' or 'sum', got {reduction!r}")
    return reduction


def check_axis(axis, ndim: int, name: str = "axis") -> int:
    a = to_int(axis, name)
    if not -ndim <= a < ndim:
        raise ValueError(f"{name}: expected an axis in [{-ndim}, {ndim - 1}] for a {ndim}-D array, got {axis}")
    return a % ndim


def check_same_shape(a: np.ndarray, a_name: str, b: np.ndarray, b_name: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{b_name}: expected shape {a.shape} (the shape of {a_name}), got {b.shape}")


def class_targets(target, n: int, num_classes: int, name: str = "target") -> np.ndarray:
    """Integer class indices of shape (n,), each in [0, num_classes): int64 C-contiguous."""
    t = np.asarray(target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer class indices, got dtype {t.dtype}")
    if t.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},) (one class index per row), got {t.shape}")
    if n and (t.min() < 0 or t.max() >= num_classes):
        bad = t[(t < 0) | (t >= num_classes)][0]
        raise ValueError(f"{name}: class indices must lie in [0, {num_classes}), found {int(bad)}")
    return np.ascontiguousarray(t, dtype=np.int64)
