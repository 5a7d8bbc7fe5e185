"""nnx.Tensor: an ndarray that remembers how it was made, so gradients can flow back through it.

A Tensor holds `data` (an ndarray) and, when it was computed from tensors that require gradients, its
`_parents` and a `_backward` closure. `_backward(g)` receives d(loss)/d(self) and returns d(loss)/d(parent)
for each parent (None where a parent needs none). `backward()` hands the graph to nnx.autograd, which walks
it from the output to the leaves (the engine and the grad mode live there, so this class reads in one
sitting), in the spirit of micrograd and tinygrad.

Gradients are stored on leaves only (tensors created by the user with requires_grad=True, such as
parameters), as PyTorch does; the graph is freed after backward unless retain_graph=True.
"""
from __future__ import annotations

import math
import numbers
from typing import Callable, Sequence

import numpy as np

from . import _capture
from . import anomaly as _anomaly
from . import autograd as _autograd
from ._tensor_methods import TensorMethods, _axis, _keep
from ._args import ELEMENTWISE_KERNEL_MIN, one_value_as, repeats_one_value
from .autograd import _unbroadcast, enable_grad, is_grad_enabled, no_grad  # noqa: F401

_functional_module = None


def _functional():
    """nnx.functional, imported on first use (it imports this module). Kept in a global: an import statement in a
    method's per-call path cost about 0.6 us each time."""
    global _functional_module
    if _functional_module is None:
        from . import functional
        _functional_module = functional
    return _functional_module


def _scaled(g: np.ndarray, s: np.ndarray) -> np.ndarray:
    """g * s for a 0-d s: one value broadcast over a shape (every stride 0) stays one, its product broadcast."""
    if repeats_one_value(g):
        return one_value_as(np.asarray(g[(0,) * g.ndim] * s), g.shape)
    _checks = _autograd._ops_checks()
    return _checks.scale(g, s)


# Tensor.sum() and mean() of all elements in these dtypes are one kernel call (nnx.ops.sum / mean).
_KERNEL_SUM_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _to_array(data, dtype=None) -> np.ndarray:
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, np.ndarray):
        return data if dtype is None else data.astype(dtype, copy=False)
    arr = np.asarray(data, dtype=dtype)
    # Python floats default to float32 (nnx's working precision), as in PyTorch.
    if dtype is None and arr.dtype == np.float64 and not isinstance(data, np.generic):
        arr = arr.astype(np.float32)
    return arr


class Tensor(TensorMethods):
    """An ndarray with an optional gradient and the record of the operation that produced it.

    Reductions take PyTorch's `dim`/`keepdim` or NumPy's `axis`/`keepdims`; comparisons are element-wise
    and give bool tensors (see _tensor_methods.py)."""

    # ndarray <op> Tensor must call Tensor's reflected operator instead of broadcasting over the Tensor.
    __array_ufunc__ = None
    # Gradient-ready hooks of a leaf (register_grad_ready_hook); a class-level empty tuple, so the tensors
    # that have none (nearly all) pay nothing per instance.
    _grad_hooks: tuple = ()
    # A fusable op's offer to absorb a following relu (functional._ReluSlot); None on most tensors.
    _relu_slot = None

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data: np.ndarray = _to_array(data, dtype)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"requires_grad: only floating-point tensors can require gradients, "
                            f"got dtype {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        self.grad: np.ndarray | None = None
        self._parents: tuple = ()
        self._backward: Callable | None = None
        self._op = ""

    # ----------------------------------------------------------------- graph construction
    @staticmethod
    def _make(data: np.ndarray, parents: Sequence["Tensor"], backward: Callable, op: str) -> "Tensor":
        """The result of an op: records parents and backward only when some parent needs a gradient."""
        out = Tensor(data)
        if _anomaly.active:
            _anomaly.check_forward(out, out.data, parents, op)
        if is_grad_enabled():
            for p in parents:  # any(...) of a generator costs more than the rest of this function
                if p.requires_grad:
                    out.requires_grad = True
                    out._parents = tuple(parents)
                    out._backward = backward
                    out._op = op
                    break
        return out

    @property
    def is_leaf(self) -> bool:
        return self._backward is None

    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Computes d(self)/d(leaf) for every leaf that requires grad and adds it to leaf.grad.

        grad defaults to 1 for a single-element tensor (a loss); otherwise it must be given, shaped like self.
        The engine (graph order, gradient sums, hooks, freeing the graph) is nnx.autograd.backward.
        """
        _autograd.backward(self, grad, retain_graph)

    # ----------------------------------------------------------------- ndarray-like views
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        return len(self.data)

    def numpy(self) -> np.ndarray:
        return self.data

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: only a single-element tensor converts to a Python number, got shape {self.shape}")
        return self.data.reshape(()).item()

    def detach(self) -> "Tensor":
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def requires_grad_(self, flag: bool = True) -> "Tensor":
        if flag and self.dtype.kind != "f":
            raise TypeError(f"requires_grad: only floating-point tensors can require gradients, got {self.dtype}")
        self.requires_grad = bool(flag)
        return self

    def zero_grad(self) -> None:
        self.grad = None

    def register_grad_ready_hook(self, hook: Callable) -> "_HookHandle":
        """Calls hook(self) during backward() as soon as this leaf's gradient for that backward is complete
        (self.grad holds it, accumulated with any earlier one), before the rest of the graph is walked.
        nnx.distributed uses it to start averaging gradients while backward still runs. Returns a handle
        whose remove() unregisters the hook."""
        if not callable(hook):
            raise TypeError(f"hook: expected a callable taking the tensor, got {type(hook).__name__}")
        if not self.is_leaf:
            raise ValueError("register_grad_ready_hook: only leaf tensors (parameters) keep a gradient; this "
                             f"tensor was computed by {self._op!r}")
        self._grad_hooks = self._grad_hooks + (hook,)
        return _HookHandle(self, hook)

    def __repr__(self) -> str:
        body = np.array2string(self.data, precision=4, separator=", ", prefix="Tensor(")
        extra = f", dtype={self.dtype}" if self.dtype != np.float32 else ""
        if self._op:
            extra += f", grad_fn=<{self._op}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"Tensor({body}{extra})"

    def astype(self, dtype) -> "Tensor":
        src = self.dtype
        return Tensor._make(self.data.astype(dtype), (self,), lambda g: (g.astype(src),), "astype")

    def double(self) -> "Tensor":
        return self.astype(np.float64)

    def float(self) -> "Tensor":
        return self.astype(np.float32)

    # ----------------------------------------------------------------- arithmetic
    def _operand(self, other) -> "Tensor":
        if isinstance(other, Tensor):
            return other
        if isinstance(other, (numbers.Number, np.generic)) or (isinstance(other, np.ndarray) and other.dtype.kind != "f"):
            # Scalars and integer arrays take this tensor's dtype, so x * 2 stays float32.
            return Tensor(np.asarray(other, dtype=self.dtype if self.dtype.kind == "f" else None))
        return Tensor(other)

    def __add__(self, other):
        _checks = _autograd._ops_checks()  # the sum kernel for large same-shape arrays (same bits as NumPy's)
        F = _functional()
        o = self._operand(other)
        # The sum offers to absorb a following relu, as a residual block's relu(out + identity) is written
        # (functional._ReluSlot): the relu then runs in place on it and this backward masks g by y > 0.
        slot = F._ReluSlot(_checks.add(self.data, o.data), F._backend)

        def backward(g):
            if slot.activation is not None:
                g = F._fn(slot.backend, "relu_backward")(g, slot.y)
            return g, g

        return F._with_slot(Tensor._make(slot.y, (self, o), backward, "add"), slot)

    __radd__ = __add__

    def __sub__(self, other):
        o = self._operand(other)
        return Tensor._make(self.data - o.data, (self, o), lambda g: (g, -g), "sub")

    def __rsub__(self, other):
        return self._operand(other) - self

    def __mul__(self, other):
        o = self._operand(other)
        a, b = self, o
        if (o.data.ndim == 0 and a.data.size >= ELEMENTWISE_KERNEL_MIN and not isinstance(other, Tensor)
                and o.dtype == a.dtype):
            # A large tensor times a number (a constant of the program): the scale kernel, and a gradient that stays
            # one broadcast value where g is one (a sum's or mean's), for the kernels that read such a dy in place.
            _checks = _autograd._ops_checks()
            s = o.data
            return Tensor._make(_checks.scale(a.data, s), (a, o),
                                lambda g: (_scaled(g, s) if a.requires_grad else None, None), "mul")
        return Tensor._make(a.data * b.data, (a, b),
                            lambda g: (g * b.data if a.requires_grad else None,
                                       g * a.data if b.requires_grad else None), "mul")

    __rmul__ = __mul__

    def __truediv__(self, other):
        o = self._operand(other)
        a, b = self, o

        def backward(g):
            ga = g / b.data if a.requires_grad else None
            gb = -g * a.data / (b.data * b.data) if b.requires_grad else None
            return ga, gb

        return Tensor._make(a.data / b.data, (a, b), backward, "div")

    def __rtruediv__(self, other):
        return self._operand(other) / self

    def __neg__(self):
        return Tensor._make(-self.data, (self,), lambda g: (-g,), "neg")

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor) or not isinstance(exponent, (numbers.Real, np.generic)):
            raise TypeError(f"exponent: expected a Python number, got {type(exponent).__name__}")
        x = self.data
        e = float(exponent)
        out = x ** np.asarray(e, dtype=x.dtype)
        return Tensor._make(out, (self,), lambda g: (g * e * x ** np.asarray(e - 1, dtype=x.dtype),), "pow")

    def __matmul__(self, other):
        o = self._operand(other)
        a, b = self, o
        if a.dtype == b.dtype and a.dtype.kind == "f" and a.dtype.itemsize in (4, 8):
            F = _functional()
            return F.matmul(a, b)  # the packed GEMM (nnx.ops.matmul)

        # Other dtypes (integers, mixed precisions) as NumPy multiplies them.
        def backward(g):
            ad, bd = a.data, b.data
            # Promote 1-D operands to matrices as np.matmul does, then drop the added axis again.
            a2 = ad[None, :] if ad.ndim == 1 else ad
            b2 = bd[:, None] if bd.ndim == 1 else bd
            g2 = g
            if ad.ndim == 1:
                g2 = np.expand_dims(g2, -2)
            if bd.ndim == 1:
                g2 = np.expand_dims(g2, -1)
            ga = gb = None
            if a.requires_grad:
                ga = _unbroadcast(g2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(ad.shape)
            if b.requires_grad:
                gb = _unbroadcast(np.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(bd.shape)
            return ga, gb

        return Tensor._make(a.data @ b.data, (a, b), backward, "matmul")

    def matmul(self, other):
        return self @ other

    def __rmatmul__(self, other):
        return self._operand(other) @ self

    # ----------------------------------------------------------------- elementwise math
    def exp(self):
        y = np.exp(self.data)
        return Tensor._make(y, (self,), lambda g: (g * y,), "exp")

    def log(self):
        x = self.data
        return Tensor._make(np.log(x), (self,), lambda g: (g / x,), "log")

    def sqrt(self):
        y = np.sqrt(self.data)
        return Tensor._make(y, (self,), lambda g: (g * 0.5 / y,), "sqrt")

    def abs(self):
        x = self.data
        return Tensor._make(np.abs(x), (self,), lambda g: (g * np.sign(x),), "abs")

    def relu(self):
        F = _functional()
        return F.relu(self)

    def sigmoid(self):
        F = _functional()
        return F.sigmoid(self)

    def tanh(self):
        F = _functional()
        return F.tanh(self)

    # ----------------------------------------------------------------- reductions
    def sum(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None):
        axis, keepdims = _axis(dim, axis, "axis"), _keep(keepdim, keepdims)
        shape = self.shape

        def backward(g):
            if axis is None:
                return (one_value_as(g, shape),)
            if not keepdims:
                g = np.expand_dims(g, axis)
            return (np.broadcast_to(g, shape),)

        if axis is None and self.dtype in _KERNEL_SUM_DTYPES:
            return Tensor._make(self._all_elements("sum", keepdims), (self,), backward, "sum")
        return Tensor._make(np.asarray(self.data.sum(axis=axis, keepdims=keepdims)), (self,), backward, "sum")

    def mean(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None):
        axis, keepdims = _axis(dim, axis, "axis"), _keep(keepdim, keepdims)
        if axis is None and self.dtype in _KERNEL_SUM_DTYPES:
            shape, n = self.shape, self.data.size
            # The gradient of dy / n in every element, dy / n rounded once as the scaled sum's backward rounds it.
            def backward(g):
                return (one_value_as(np.asarray(g * np.asarray(1.0 / max(n, 1), dtype=g.dtype)), shape),)

            return Tensor._make(self._all_elements("mean", keepdims), (self,), backward, "mean")
        n = self.data.size if axis is None else int(np.prod([self.shape[a] for a in np.atleast_1d(axis)]))
        return self.sum(axis=axis, keepdims=keepdims) * (1.0 / max(n, 1))

    def _all_elements(self, op: str, keepdims: bool) -> np.ndarray:
        """The sum or mean of all elements through the backend's op (nnx.ops: one threaded pass, summed in double);
        NumPy's where a backend has none."""
        fn = getattr(_functional()._backend, op, None)
        if fn is not None:
            out = fn(self.data)
        else:
            out = np.asarray(self.data.sum() if op == "sum" else self.data.sum() / self.dtype.type(max(self.data.size, 1)))
        return out.reshape((1,) * self.ndim) if keepdims else out

    # ----------------------------------------------------------------- shape
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        src = self.shape
        return Tensor._make(_reshaped(self.data, shape), (self,), lambda g: (_reshaped(g, src),), "reshape")

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        nd = max(self.ndim, 1)
        s, e = start_dim % nd, end_dim % nd
        shape = self.shape[:s] + (math.prod(self.shape[s:e + 1]),) + self.shape[e + 1:]
        return self.reshape(shape)

    def transpose(self, dim0: int = None, dim1: int = None):
        """Swaps two axes (all axes reversed when none are given, as ndarray.transpose())."""
        if dim0 is None and dim1 is None:
            axes = tuple(reversed(range(self.ndim)))
        else:
            axes = list(range(self.ndim))
            axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
            axes = tuple(axes)
        return self.permute(*axes)

    def permute(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        inverse = tuple(np.argsort(axes))
        return Tensor._make(self.data.transpose(axes), (self,), lambda g: (g.transpose(inverse),), "permute")

    @property
    def T(self):
        return self.transpose()

    def __getitem__(self, index):
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        x = self.data

        # A basic index (ints, slices, ..., None) selects each element at most once, so plain assignment
        # scatters the gradient; an integer or boolean array may repeat an element (x[[0, 0]]), and add.at
        # collects every copy's gradient (several times slower).
        basic = all(i is None or i is Ellipsis or isinstance(i, (slice, int, np.integer))
                    for i in (index if isinstance(index, tuple) else (index,)))

        def backward(g):
            if _capture.current() is not None and _basic_index(index) and x.dtype.kind == "f":
                # nnx.compile: zeros and the add as recorded kernel calls (same bits as below), so a replay
                # redoes them. A basic index (ints, slices) selects each element at most once.
                _checks = _autograd._ops_checks()
                full = _checks.zeros(x.shape, x.dtype, "grad")
                _checks._C.add_into(np.asarray(g, dtype=x.dtype), full[index])
                return (full,)
            full = np.zeros_like(x)
            if basic:
                full[index] = g
            else:
                np.add.at(full, index, g)
            return (full,)

        return Tensor._make(np.asarray(x[index]), (self,), backward, "getitem")


def _reshaped(a: np.ndarray, shape) -> np.ndarray:
    """a.reshape(shape); when that copies (a non-contiguous view) while nnx.compile captures a step, the copy
    is a recorded kernel call instead, so a replay redoes it (same bits)."""
    out = a.reshape(shape)
    if out.size and _capture.current() is not None and not np.may_share_memory(out, a):
        _checks = _autograd._ops_checks()
        out = _checks.contiguous(a, "x").reshape(shape)
    return out


def _concatenated(arrays: list, axis: int) -> np.ndarray:
    """np.concatenate(arrays, axis); while nnx.compile captures a step, each piece's copy is a recorded
    kernel call (same bits), so a replay redoes it."""
    a0 = arrays[0]
    if (_capture.current() is None or not isinstance(axis, (int, np.integer)) or a0.ndim == 0
            or any(a.dtype != a0.dtype or a.ndim != a0.ndim for a in arrays)):
        return np.concatenate(arrays, axis=axis)
    ax = int(axis) % a0.ndim
    if any(a.shape[:ax] + a.shape[ax + 1:] != a0.shape[:ax] + a0.shape[ax + 1:] for a in arrays):
        return np.concatenate(arrays, axis=axis)  # NumPy's error
    _checks = _autograd._ops_checks()
    shape = a0.shape[:ax] + (sum(a.shape[ax] for a in arrays),) + a0.shape[ax + 1:]
    out = _checks.empty(shape, a0.dtype, "cat")
    start = 0
    for a in arrays:
        _checks._C.copy_into(a, out[(slice(None),) * ax + (slice(start, start + a.shape[ax]),)])
        start += a.shape[ax]
    return out


def _basic_index(index) -> bool:
    """True for an index of ints, slices, Ellipsis and None only (a view; no element picked twice)."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, slice)
               or (isinstance(p, (int, np.integer)) and not isinstance(p, bool)) for p in parts)


class _HookHandle:
    """What register_grad_ready_hook returns: remove() unregisters the hook (twice is harmless)."""

    def __init__(self, tensor: Tensor, hook: Callable):
        self._tensor, self._hook = tensor, hook

    def remove(self) -> None:
        hooks = list(self._tensor._grad_hooks)
        if self._hook in hooks:
            hooks.remove(self._hook)
            self._tensor._grad_hooks = tuple(hooks)


def tensor(data, requires_grad: bool = False, dtype=None) -> Tensor:
    """A new Tensor holding a copy of `data` (Python floats become float32, as torch.tensor)."""
    return Tensor(np.array(_to_array(data, dtype), copy=True), requires_grad=requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A Tensor sharing memory with `array` (no copy, dtype kept), as torch.from_numpy."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"array: expected a numpy.ndarray, got {type(array).__name__}")
    return Tensor(array)


def flatten(x, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """torch.flatten: axes start_dim..end_dim merged into one (all of them by default)."""
    return (x if isinstance(x, Tensor) else Tensor(x)).flatten(start_dim, end_dim)


def cat(tensors: Sequence, axis: int = 0, dim: int | None = None) -> Tensor:
    """Concatenates along `axis` (alias `dim`); the gradient is split back into the pieces."""
    if dim is not None:
        axis = dim
    ts = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if not ts:
        raise ValueError("tensors: expected at least one tensor to concatenate, got none")
    data = _concatenated([t.data for t in ts], axis)
    bounds = np.cumsum([t.shape[axis] for t in ts])[:-1]

    def backward(g):
        return tuple(np.split(g, bounds, axis=axis))

    return Tensor._make(data, ts, backward, "cat")


def stack(tensors: Sequence, axis: int = 0) -> Tensor:
    ts = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    return cat([t.reshape(t.shape[:axis % (t.ndim + 1)] + (1,) + t.shape[axis % (t.ndim + 1):]) for t in ts],
               axis=axis)
