"""Tensor methods that PyTorch code reaches for: reductions with `dim`/`keepdim` (max, min, argmax,
argmin), comparisons, clamp and the shape helpers unsqueeze/squeeze/view_as. Tensor inherits them from
TensorMethods; they are kept here so tensor.py stays the autograd core."""
from __future__ import annotations

from collections import namedtuple

import numpy as np

# torch.max(x, dim) returns (values, indices) that also unpack as a pair.
ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])


def _axis(dim, axis, name="dim"):
    """The reduction axis from PyTorch's `dim` or NumPy's `axis` (one or the other)."""
    if dim is not None and axis is not None and dim != axis:
        raise TypeError(f"{name}: got both dim={dim!r} and axis={axis!r}; pass one")
    a = dim if dim is not None else axis
    if isinstance(a, list):
        a = tuple(a)
    return a


def _keep(keepdim, keepdims) -> bool:
    return bool(keepdim) if keepdim is not None else bool(keepdims)


def _check_dim(dim, ndim: int, name="dim") -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{name}: expected an int axis, got {type(dim).__name__} {dim!r}")
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise ValueError(f"{name}: expected an axis in [{-max(ndim, 1)}, {max(ndim, 1) - 1}] for a {ndim}-d tensor, "
                         f"got {dim}")
    return int(dim) % max(ndim, 1)


def _plain(data):
    from .tensor import Tensor
    return Tensor(data)


class TensorMethods:
    # ----------------------------------------------------------------- extreme values
    def _extreme(self, kind: str, dim, keepdim: bool):
        x = self.data
        pick = np.argmax if kind == "max" else np.argmin
        if dim is None:
            if x.size == 0:
                raise ValueError(f"{kind}: the tensor is empty; there is no {kind}imum")
            m = x.max() if kind == "max" else x.min()
            out = np.asarray(m)

            def backward(g):
                # Ties share the gradient evenly, as torch.max(x) does.
                mask = (x == m).astype(x.dtype)
                return (g * mask / mask.sum(),)

            return self._make(out, (self,), backward, kind)
        d = _check_dim(dim, x.ndim)
        if x.ndim == 0:
            idx = np.zeros((), np.int64)
            return ValuesIndices(self._make(x.copy(), (self,), lambda g: (g,), kind), _plain(idx))
        if x.shape[d] == 0:
            raise ValueError(f"dim: cannot take the {kind} over axis {d} of length 0 (shape {x.shape})")
        kept = np.expand_dims(pick(x, axis=d), d)
        vals = np.take_along_axis(x, kept, axis=d)

        def backward(g):
            full = np.zeros_like(x)
            np.put_along_axis(full, kept, g if keepdim else np.expand_dims(g, d), axis=d)
            return (full,)

        idx = kept
        if not keepdim:
            vals, idx = np.squeeze(vals, d), np.squeeze(kept, d)
        return ValuesIndices(self._make(np.array(vals, order="C"), (self,), backward, kind),
                             _plain(idx.astype(np.int64)))

    def max(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        """The largest element (dim None; ties share the gradient), or (values, indices) along `dim`."""
        return self._extreme("max", _axis(dim, axis), _keep(keepdims, keepdim))

    def min(self, dim=None, keepdim: bool = False, *, axis=None, keepdims=None):
        """The smallest element (dim None), or (values, indices) along `dim`."""
        return self._extreme("min", _axis(dim, axis), _keep(keepdims, keepdim))

    def _arg(self, pick, dim, keepdim):
        x = self.data
        if x.size == 0:
            raise ValueError("the tensor is empty; there is no arg-extremum")
        if dim is None:
            i = np.asarray(pick(x), dtype=np.int64)
            return _plain(i.reshape((1,) * x.ndim) if keepdim else i)
        d = _check_dim(dim, x.ndim)
        i = pick(x, axis=d) if x.ndim else np.zeros((), np.int64)
        return _plain(np.asarray(np.expand_dims(i, d) if keepdim and x.ndim else i, dtype=np.int64))

    def argmax(self, dim=None, keepdim: bool = False, *, axis=None):
        """Index of the largest element (of the flattened tensor when dim is None), int64, no gradient."""
        return self._arg(np.argmax, _axis(dim, axis), keepdim)

    def argmin(self, dim=None, keepdim: bool = False, *, axis=None):
        return self._arg(np.argmin, _axis(dim, axis), keepdim)

    # ----------------------------------------------------------------- comparisons (bool, no gradient)
    def _compare(self, other, op):
        o = other.data if hasattr(other, "_make") else np.asarray(other)
        return _plain(op(self.data, o))

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    def __eq__(self, other):  # element-wise, as torch; Tensors stay hashable by identity
        return self._compare(other, np.equal)

    def __ne__(self, other):
        return self._compare(other, np.not_equal)

    __hash__ = object.__hash__

    def eq(self, other):
        return self == other

    def ne(self, other):
        return self != other

    def lt(self, other):
        return self < other

    def le(self, other):
        return self <= other

    def gt(self, other):
        return self > other

    def ge(self, other):
        return self >= other

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(f"the truth value of a tensor with {self.data.size} elements is ambiguous; use "
                             f".any() or .all()")
        return bool(self.data.reshape(()))

    def any(self):
        return _plain(np.asarray(self.data.any()))

    def all(self):
        return _plain(np.asarray(self.data.all()))

    # ----------------------------------------------------------------- clamp
    def clamp(self, min=None, max=None):
        """Limits every element to [min, max]; the gradient passes where min <= x <= max (as torch)."""
        if min is None and max is None:
            raise ValueError("clamp: expected at least one of min and max, got neither")
        x = self.data
        dt = x.dtype if x.dtype.kind == "f" else None
        lo = None if min is None else np.asarray(min, dtype=dt)
        hi = None if max is None else np.asarray(max, dtype=dt)
        y = x
        if lo is not None:
            y = np.maximum(y, lo)
        if hi is not None:
            y = np.minimum(y, hi)
        keep = np.ones(x.shape, bool)
        if lo is not None:
            keep &= x >= lo
        if hi is not None:
            keep &= x <= hi
        return self._make(np.asarray(y, dtype=x.dtype), (self,), lambda g: (g * keep,), "clamp")

    clip = clamp

    # ----------------------------------------------------------------- shapes
    def size(self, dim=None):
        """The shape (a tuple), or its length along `dim`, as torch.Tensor.size."""
        if dim is None:
            return self.shape
        return self.shape[_check_dim(dim, self.ndim)]

    def view_as(self, other):
        return self.reshape(tuple(other.shape))

    def reshape_as(self, other):
        return self.reshape(tuple(other.shape))

    def unsqueeze(self, dim: int):
        """A new axis of length 1 at `dim` (negative counts from the end of the result, as torch)."""
        d = _check_dim(dim, self.ndim + 1)
        return self.reshape(self.shape[:d] + (1,) + self.shape[d:])

    def squeeze(self, dim=None):
        """Drops axes of length 1 (all of them, or `dim` only when it has length 1, as torch)."""
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        dims = dim if isinstance(dim, (tuple, list)) else (dim,)
        ds = {_check_dim(d, self.ndim) for d in dims} if self.ndim else set()
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if not (i in ds and n == 1)))
