"""Former home of the argument checks, now nnx._args (pure Python, shared with nnx.reference).

Two layout helpers are overridden here for nnx.ops: while nnx.compile captures a step on this thread, the
copy that makes an array contiguous and the zero array of an absent initial state are made by recorded
kernel calls (cpp/layout), so a replay remakes them from the new data; otherwise they are NumPy's, with the
same bits."""
import numpy as np

from .. import _args
from .. import _capture
from .._args import *  # noqa: F401,F403
from .._backend import _C

_LAYOUT_ITEMSIZES = (1, 2, 4, 8)


def _recordable(x: np.ndarray) -> bool:
    return (type(x) is np.ndarray and x.itemsize in _LAYOUT_ITEMSIZES and x.ndim <= 8
            and x.dtype.kind in "fiub" and x.flags.aligned)


def contiguous(x: np.ndarray, name: str = "array") -> np.ndarray:
    """C-contiguous, aligned array (copy only when needed), of x's shape; while a step is captured the copy
    is a recorded kernel call."""
    f = x.flags
    if f.c_contiguous and f.aligned and type(x) is np.ndarray:
        return x
    if _capture.current() is not None and _recordable(x):
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
