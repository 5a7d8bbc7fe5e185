"""Argument normalisation shared by nnx.ops, nnx.reference and the layers: dtype policy, shapes, clear errors.

Pure Python and NumPy: nnx.reference, the oracle, imports it too and must never load the extension.

Every error names the argument, what was expected and what came, so a user can fix the call without
reading the source.
"""
from __future__ import annotations

import math
import numbers
import os

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Window parameters (stride, padding, dilation, kernel size) above this are refused: no real layer comes
# near it, and it keeps every size product in the C++ geometry (e.g. dilation * (kernel - 1)) inside int64.
MAX_PARAM = 1 << 30

# Allocations below this many bytes are not worth checking against the free memory (reading it costs more
# than a small op); above it, a request larger than what the machine has is refused before it is made.
_CHECK_ABOVE = 1 << 28
_INT64_MAX = (1 << 63) - 1


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux MemAvailable, else physical memory), or None."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_alloc(shape, dtype, name: str, what: str = "an array") -> None:
    """Raises before a (shape, dtype) allocation that cannot succeed: ValueError when its size overflows
    int64, MemoryError when it exceeds the available memory (where NumPy might get the address space from
    the OS and the process be killed when the pages are touched)."""
    if isinstance(shape, numbers.Integral):
        shape = (shape,)
    count = math.prod(map(int, shape))
    if count <= _CHECK_ABOVE // 16:  # no item is larger than 16 bytes: small, whatever the dtype (fast path)
        return
    nbytes = count * np.dtype(dtype).itemsize
    if nbytes <= _CHECK_ABOVE:
        return
    if nbytes > _INT64_MAX:
        raise ValueError(f"{name}: {what} of shape {tuple(shape)} ({np.dtype(dtype)}) would take {nbytes} bytes, "
                         f"which overflows a 64-bit size")
    avail = available_memory()
    if avail is not None and nbytes > avail:
        raise MemoryError(f"{name}: {what} of shape {tuple(shape)} ({np.dtype(dtype)}) needs {nbytes} bytes "
                          f"({nbytes / 2**30:.1f} GiB), more than the {avail} bytes ({avail / 2**30:.1f} GiB) of "
                          f"memory available")


# Elements of a result small enough to allocate without check_alloc (empty's common case).
SMALL_ALLOC = _CHECK_ABOVE // 16

# Element-wise sums and products of whole arrays in Tensor arithmetic and autograd (a residual add, the sum of a
# tensor's gradients, a tensor times a number): from this many elements a threaded kernel call (nnx.ops._checks,
# cpp/layout); below it NumPy's, whose fixed cost is lower. IEEE sums and products either way: the same bits.
ELEMENTWISE_KERNEL_MIN = 1 << 14


# Results of at least _LARGE_BYTES take their memory from the extension's block cache (cpp/common/block_cache.h:
# glibc maps such blocks afresh and every page faults in zeroed, which cost a ReLU over 16 M floats more than the
# ReLU; and the kernels write such results with streaming stores, which want them to start on a cache line). All
# three are set by nnx._backend when the extension loads (_LARGE_BYTES from its kBlockCacheMinBytes);
# nnx.reference, which never loads it, keeps np.empty. Such an array's base is a _BLOCK_BASE, which owns_memory
# counts as the array's own memory.
_LARGE_BYTES = 0
_large_empty = None
_BLOCK_BASE = type(None)
# While nnx.compile captures a step, op results take their memory from the plan's blocks instead (Plan.empty in
# cpp/bindings/compile.cpp), reused as results are dropped; their base is a _CAPTURE_BASE. Both set by
# nnx._backend (_capture_state: nnx._capture's thread-local state), so that this module imports nothing of nnx.
_CAPTURE_BASE = type(None)
_capture_state = None


def owns_memory(a: np.ndarray) -> bool:
    """Whether `a` owns its memory (no other array is a view of it or its base): np.empty's arrays, the block
    cache's and those of a step being captured (_CAPTURE_BASE)."""
    b = a.base
    return b is None or type(b) is _BLOCK_BASE or type(b) is _CAPTURE_BASE


def empty(shape, dtype, name: str) -> np.ndarray:
    """np.empty after check_alloc (or a block-cache array, for large results; the capture's plan's memory while
    nnx.compile captures a step): the result `name` of an op."""
    if type(shape) is int:  # a vector (a bias's gradient): check_alloc's Integral test costs microseconds
        shape = (shape,)
    rec = None if _capture_state is None else _capture_state.recording
    if rec is not None:
        check_alloc(shape, dtype, name, "the result")
        shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
        return rec.plan.empty(list(shape), np.dtype(dtype))
    if type(shape) is tuple:
        count = math.prod(shape)
        if count <= SMALL_ALLOC:  # the common small case, checked cheaply
            if _large_empty is None or count < _LARGE_BYTES // 8 or count * np.dtype(dtype).itemsize < _LARGE_BYTES:
                return np.empty(shape, dtype=dtype)
            return _large_empty(shape, np.dtype(dtype))
    check_alloc(shape, dtype, name, "the result")
    if _large_empty is not None:
        shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
        if math.prod(shape) * np.dtype(dtype).itemsize >= _LARGE_BYTES:
            return _large_empty(shape, np.dtype(dtype))
    return np.empty(shape, dtype=dtype)


def repeats_one_value(a) -> bool:
    """Whether a is an ndarray of more than one element that repeats one value, every stride 0: a sum's or
    mean's gradient broadcast over the summed shape."""
    return type(a) is np.ndarray and a.size > 1 and not any(a.strides)


def one_value_as(g, shape: tuple) -> np.ndarray:
    """g's one element (a 0-d or one-element array) viewed as `shape`, every stride 0, read-only: what
    np.broadcast_to(g, shape) gives, for a quarter of its cost (a sum's gradient, once per backward)."""
    if type(g) is not np.ndarray or g.size != 1 or g.ndim > len(shape):
        return np.broadcast_to(g, shape)
    v = np.ndarray(shape, g.dtype, g, 0, (0,) * len(shape))
    v.setflags(write=False)
    return v


def unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sums `g` over the axes along which an operand of `shape` was broadcast to g's shape (autograd's sums of
    gradients, nnx.ops.matmul_backward's batch axes)."""
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    if extra > 0:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


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
    first_name = first = None
    for name, arr in arrays.items():
        if arr is None:
            continue
        if first is None:
            first_name, first = name, arr
        elif arr.dtype != first.dtype:
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


def contiguous(x: np.ndarray, name: str = "array") -> np.ndarray:
    """C-contiguous, aligned array (copy only when needed), of x's shape."""
    if type(x) is np.ndarray:
        f = x.flags
        if f.c_contiguous and f.aligned:  # the common case: x itself, as below, with less work
            return x
    if x.nbytes > _CHECK_ABOVE and not (x.flags.c_contiguous and x.flags.aligned):
        check_alloc(x.shape, x.dtype, name, "a contiguous copy")  # e.g. of a broadcast view
    y = np.ascontiguousarray(x)
    if y.ndim != x.ndim:  # ascontiguousarray makes a 0-d array 1-d
        y = y.reshape(x.shape)
    return y if y.flags.aligned else y.copy()


def to_int(v, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    if type(v) is int and (minimum is None or v >= minimum) and (maximum is None or v <= maximum):
        return v  # the common case, without the (slow) abstract-base-class test below
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(v).__name__} {v!r}")
    v = int(v)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name}: expected an int <= {maximum}, got {v}")
    return v


def pair(v, name: str, minimum: int | None = None, maximum: int | None = MAX_PARAM) -> tuple[int, int]:
    """An int or a pair of ints -> (int, int), as PyTorch accepts for stride/padding/dilation."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name}: expected an int or a pair of ints, got {v!r}")
        return (to_int(v[0], name, minimum, maximum), to_int(v[1], name, minimum, maximum))
    x = to_int(v, name, minimum, maximum)
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
    if t.dtype != np.int64 or not t.flags.c_contiguous:
        check_alloc(t.shape, np.int64, name, "an int64 copy")  # before scanning a giant broadcast view
    # The range [0, num_classes) is checked by the kernel call itself (cpp/bindings/loss.cpp), which raises
    # the same ValueError: a captured step (nnx.compile) checks the targets of every replay that way too.
    return np.ascontiguousarray(t, dtype=np.int64)


# Read-only arrays of constants the ops pass to kernels (e.g. the ones vector of a column sum), made once
# per shape and dtype. nnx.compile treats them as state a captured step may read.
CONSTANTS: dict = {}


def _constant(kind: str, make, shape: tuple, dtype) -> np.ndarray:
    """The read-only array make(shape, dtype) kept in CONSTANTS under (kind, shape, dtype)."""
    key = (kind, shape, np.dtype(dtype).str)
    a = CONSTANTS.get(key)
    if a is None:
        if len(CONSTANTS) >= 256:  # many distinct batch sizes: start over rather than grow without bound
            CONSTANTS.clear()
        a = make(shape, dtype=dtype)
        a.flags.writeable = False
        CONSTANTS[key] = a
    return a


def constant_zeros(shape: tuple, dtype) -> np.ndarray:
    """A read-only zeros array kept in CONSTANTS (so a captured step may read it, e.g. broadcast)."""
    return _constant("zeros", np.zeros, shape, dtype)


def constant_ones(shape: tuple, dtype) -> np.ndarray:
    """A read-only ones array kept in CONSTANTS (e.g. the ones vector of a column sum)."""
    return _constant("ones", np.ones, shape, dtype)
