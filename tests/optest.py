"""Shared checker for op tests (in the spirit of XNNPACK's testers): one line per case in the tests.

Tolerances: float64 agrees to 1e-9 relative, float32 to 1e-4 relative, each widened by sqrt(k) / 8 for sums
of length k (rounding error of a length-k sum grows like sqrt(k) on random data). The comparison scale of
each element is |want| plus 1% of max|want| so that values produced by cancellation near zero are judged
against the size of the terms that produced them.
"""
from __future__ import annotations

import math

import numpy as np

import nnx

BASE_RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-9}


def rtol_for(dtype, k: int = 1) -> float:
    return BASE_RTOL[np.dtype(dtype)] * max(1.0, math.sqrt(max(k, 1)) / 8)


def assert_close(got, want, dtype=None, k: int = 1, name: str = "result", rtol: float | None = None,
                 floor: float = 0.0):
    """got against want elementwise, relative to |want| plus 1% of the largest |want|. `floor`: differences
    below rtol * floor also pass, where floor is the size of the terms that cancelled (for algorithms whose
    rounding follows their intermediate values, such as Winograd's transforms)."""
    got = np.asarray(got)
    want = np.asarray(want)
    dtype = np.dtype(dtype or want.dtype)
    assert got.shape == want.shape, f"{name}: shape {got.shape}, expected {want.shape}"
    if dtype.kind == "f":
        assert got.dtype == dtype, f"{name}: dtype {got.dtype}, expected {dtype}"
    if got.size == 0:
        return
    tol = rtol if rtol is not None else rtol_for(dtype, k)
    w = want.astype(np.float64)
    g = got.astype(np.float64)
    finite = np.isfinite(w)
    same_nonfinite = (~finite) & ((g == w) | (np.isnan(g) & np.isnan(w)))
    scale = np.abs(w) + 0.01 * (np.abs(w[finite]).max() if finite.any() else 0.0) + np.finfo(dtype).tiny
    diff = np.abs(g - w)
    if floor:
        diff = np.where(diff <= tol * floor, 0.0, diff)
    err = np.where(finite, diff / scale, 0.0)
    bad = (finite & ~(err <= tol)) | (~finite & ~same_nonfinite)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(
            f"{name}: {int(bad.sum())} of {bad.size} elements differ (shape {want.shape}, {dtype}, k={k}, "
            f"rtol={tol:.2e}); first at index {idx}: got {g[idx]!r}, expected {w[idx]!r}"
        )


def random(rng, shape, dtype, low=-1.0, high=1.0):
    return rng.uniform(low, high, size=shape).astype(dtype)


def past_boundary(shape, dtype, k):
    """An empty C-contiguous array whose data starts k elements past a 64-byte boundary (the kernels that write
    large results past the caches align their streaming stores: every head length is a case)."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.empty(size + 64 + k * np.dtype(dtype).itemsize, np.uint8)
    start = (-raw.ctypes.data) % 64 + k * np.dtype(dtype).itemsize
    return raw[start:start + size].view(dtype).reshape(shape)


def check_op(op, ref, args, kwargs=None, dtype=None, k: int = 1, name: str | None = None):
    """Runs nnx.ops.<op> and nnx.reference.<op> on the same arguments and compares every output."""
    kwargs = kwargs or {}
    got = op(*args, **kwargs)
    want = ref(*args, **kwargs)
    label = name or getattr(op, "__name__", "op")
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), f"{label}: expected {len(want)} outputs"
        for i, (g, w) in enumerate(zip(got, want)):
            if w is None:
                assert g is None, f"{label}: output {i} should be None"
                continue
            assert_close(g, w, dtype, k, f"{label} output {i}")
            assert g.flags.c_contiguous, f"{label} output {i} is not C-contiguous"
    else:
        assert_close(got, want, dtype, k, label)
        assert np.asarray(got).flags.c_contiguous, f"{label}: result is not C-contiguous"
    return got


def has_isa(name: str) -> bool:
    """Whether this CPU can run nnx's kernels for ISA `name` (nnx.set_isa accepts it); the active ISA is left
    as it was."""
    before = nnx.cpu_info()["active_isa"]
    try:
        nnx.set_isa(name)
    except ValueError:
        return False
    finally:
        nnx.set_isa(before)
    return True


def winograd_floors(algo, dy, x, w, kw):
    """For Winograd, the largest sum of |terms| of an output and of a dx element (0 for other algorithms):
    its rounding follows the transforms' intermediate values, which grow with those sums, not with the
    result (F(2x2, 5x5) in float32: up to 2e-6 of them, measured, where a result may cancel to far less;
    F(4x4, 5x5) about as much)."""
    if algo != "winograd":
        return 0.0, 0.0
    ax, aw = np.abs(x).astype(np.float64), np.abs(w).astype(np.float64)
    fy = float(np.abs(nnx.reference.conv2d(ax, aw, **kw)).max(initial=0.0))
    fdx = float(np.abs(nnx.reference.conv2d_backward(np.abs(dy).astype(np.float64), ax, aw, **kw,
                                                     needs=(True, False, False))[0]).max(initial=0.0))
    return fy, fdx


def winograd_dw_floor(algo, dy, x, w, kw):
    """For Winograd, the largest sum of |terms| of a weight-gradient element (0 for other algorithms): its dw is
    the tiles' transformed dz and x multiplied and transformed back, so it rounds as its output does (a float32
    F(2x2, 5x5) dw element that cancelled to 1% of its terms' sum measured 1e-3 off relatively, 1e-6 of the sum)."""
    if algo != "winograd":
        return 0.0
    ax, aw, ady = (np.abs(a).astype(np.float64) for a in (x, w, dy))
    dw = nnx.reference.conv2d_backward(ady, ax, aw, **kw, needs=(False, True, False))[1]
    return float(np.abs(dw).max(initial=0.0))
