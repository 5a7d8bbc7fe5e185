"""Former home of the argument checks, now nnx._args (pure Python, shared with nnx.reference).

Two layout helpers are overridden here for nnx.ops: while nnx.compile captures a step on this thread, the
copy that makes an array contiguous and the zero array of an absent initial state are made by recorded
kernel calls (cpp/layout), so a replay remakes them from the new data; otherwise they are NumPy's, with the
same bits, except the copy of a transposed view, which the layout kernel's blocked transpose makes faster."""
import numpy as np

from .. import _args
from .. import _capture
from .._args import *  # noqa: F401,F403
from .._backend import _C

_LAYOUT_ITEMSIZES = (1, 2, 4, 8)


def _recordable(x: np.ndarray) -> bool:
    return (type(x) is np.ndarray and x.itemsize in _LAYOUT_ITEMSIZES and x.ndim <= 8
            and x.dtype.kind in "fiub" and x.flags.aligned)


def _swapped_last_axes(x: np.ndarray) -> bool:
    # A transposed view (x.T, a batch of k^T): the copy kernel transposes it in blocks, where NumPy's copy
    # reads a line per element (a (32, 64, 128) float32 view: 85 us against 53; a (2048, 128) array's .T: 257
    # against 104).
    return x.ndim >= 2 and x.itemsize in (4, 8) and x.strides[-2] == x.itemsize and x.shape[-1] >= 8 and x.shape[-2] >= 8


def contiguous(x: np.ndarray, name: str = "array") -> np.ndarray:
    """C-contiguous, aligned array (copy only when needed), of x's shape; while a step is captured, or for a
    transposed view, the copy is a kernel call (recorded by a capture)."""
    f = x.flags
    if f.c_contiguous and f.aligned and type(x) is np.ndarray:
        return x
    if _recordable(x) and (_capture.current() is not None or _swapped_last_axes(x)):
        y = _args.empty(x.shape, x.dtype, name)
        _C.copy_into(x, y)
        return y
    return _args.contiguous(x, name)


def zeros(shape, dtype, name: str = "array") -> np.ndarray:
    """np.zeros(shape, dtype); while a step is captured, filled by a recorded kernel call."""
    if _capture.current() is not None:
        y = _args.empty(tuple(shape), dtype, name)
        _C.zero_fill(y)
        return y
    return np.zeros(shape, dtype)


# Sums of two arrays, for Tensor's + and autograd's sum of a tensor's gradients (a residual block's two
# branches): of one shape and float dtype, C-contiguous, and at least _args.ELEMENTWISE_KERNEL_MIN elements, they
# are a kernel call (threaded; an IEEE sum, so the bits are NumPy's); smaller ones stay NumPy's. While a step is
# captured every such sum is a kernel call, so that nnx.compile can record it. A tensor times a number likewise.


def _kernel_operand(a) -> bool:
    """A float32 or float64 ndarray, C-contiguous and aligned, large enough for the kernel (or captured)."""
    return (type(a) is np.ndarray and a.dtype.kind == "f" and a.itemsize in (4, 8) and a.flags.c_contiguous
            and a.flags.aligned and (a.size >= _args.ELEMENTWISE_KERNEL_MIN or _capture.current() is not None))


def _kernel_summable(a, b) -> bool:
    return (_kernel_operand(a) and type(b) is np.ndarray and b.dtype == a.dtype and b.shape == a.shape
            and b.flags.c_contiguous and b.flags.aligned)


def add(a, b):
    """a + b, a new array (NumPy's broadcasting and type rules where the kernel does not apply)."""
    if _kernel_summable(a, b):
        out = np.empty_like(a)
        _C.sum_into(a, b, out)
        return out
    return a + b


def scale(a, s):
    """a * s for a 0-d s of a's dtype, a new array: the kernel where add's would run (threaded; IEEE products, so
    NumPy's bits), NumPy's multiply otherwise."""
    if _kernel_operand(a) and s.dtype == a.dtype:
        out = np.empty_like(a)
        _C.scale_into(a, float(s), out)
        return out
    return a * s


def add_inplace(dst, src) -> bool:
    """dst += src where dst is a writeable ndarray and src an ndarray of its shape and float dtype: the kernel where
    add's would run, else NumPy's in-place add (small arrays, a src that is a view: the same IEEE sums, so the same
    bits, without a new array); returns whether it was done (the caller then computes dst + src itself)."""
    if not dst.flags.writeable:
        return False
    if _kernel_summable(dst, src):
        _C.add_into(src, dst)
        return True
    if (type(dst) is np.ndarray and type(src) is np.ndarray and dst.dtype == src.dtype and dst.dtype.kind == "f"
            and dst.shape == src.shape and _capture.current() is None):
        np.add(dst, src, out=dst)
        return True
    return False
