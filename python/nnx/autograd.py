"""The autograd engine behind Tensor.backward, and the grad mode (no_grad, enable_grad).

backward(root) orders the graph below `root` topologically (parents before children) and walks it from the
output to the leaves: each node's `_backward(g)` turns d(loss)/d(node) into d(loss)/d(parent), and the
contributions of every consumer of a tensor are summed (a tensor used twice, branching and residual
graphs). Gradients land on leaves only, as in PyTorch; the graph is freed afterwards unless retain_graph.
"""
from __future__ import annotations

import contextlib
import sys
import threading
import weakref

import numpy as np

from . import _capture
from . import anomaly as _anomaly
from ._args import owns_memory, unbroadcast as _unbroadcast

class _GradModeState(threading.local):
    # Per thread, as in PyTorch: no_grad in one thread (say, an evaluation thread) leaves the others recording.
    # A class default rather than getattr(local, name, True): read by every op, and a third of the cost.
    enabled = True


_grad_mode = _GradModeState()


def is_grad_enabled() -> bool:
    return _grad_mode.enabled


class _GradMode(contextlib.ContextDecorator):
    _mode = True

    def __enter__(self):
        # A stack, not one saved value: the same no_grad() object may be entered again while active (a
        # decorated function calling itself).
        self.__dict__.setdefault("_prev", []).append(is_grad_enabled())
        _grad_mode.enabled = self._mode
        return self

    def __exit__(self, *exc):
        _grad_mode.enabled = self._prev.pop()
        return False

    def _recreate_cm(self):  # a decorated function gets a fresh context per call (threads share none)
        return type(self)()


class no_grad(_GradMode):
    """Context manager and decorator: tensors computed inside record no graph (inference, updates)."""

    _mode = False


class enable_grad(_GradMode):
    """Turns graph recording back on inside a no_grad block."""

    _mode = True


_checks_module = None


def _ops_checks():
    """nnx.ops._checks (the sum kernels), imported on first use: nnx.ops imports this module's users. Kept in a
    global, since an import statement in the engine's per-call path cost about 0.6 us each time."""
    global _checks_module
    if _checks_module is None:
        from .ops import _checks
        _checks_module = _checks
    return _checks_module


def _tensor_type():
    from .tensor import Tensor  # the Tensor class imports this module

    return Tensor


def _sole_refs() -> int:
    # sys.getrefcount of an array held only by a dict and read into a local, as `prev` below: the sum of a
    # tensor's gradients may then go into it (no one else holds it, nor a view of it, which would hold it
    # too). Measured here rather than assumed, as interpreters differ in what the call itself holds.
    held = {0: np.empty(1)}
    prev = held.get(0)
    return sys.getrefcount(prev)


_SOLE_REFS = _sole_refs()


def backward(root, grad=None, retain_graph: bool = False) -> None:
    """Computes d(root)/d(leaf) for every leaf that requires grad and adds it to leaf.grad.

    grad defaults to 1 for a single-element tensor (a loss); otherwise it must be given, shaped like root.
    """
    if not root.requires_grad:
        raise RuntimeError("backward: this tensor does not require grad and has no graph (was it computed "
                           "under no_grad, or from tensors without requires_grad=True?)")
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(f"backward: grad can be omitted only for a single-element tensor, "
                               f"got shape {root.shape}")
        grad = np.array(1, root.data.dtype).reshape(root.data.shape)  # np.ones_like's value, for a third of its cost
        shared = {}
    else:
        grad = np.asarray(grad.data if isinstance(grad, _tensor_type()) else grad, dtype=root.dtype)
        if grad.shape != root.shape:
            raise ValueError(f"grad: expected shape {root.shape}, got {grad.shape}")
        shared = {id(grad): _ref(grad)}  # the caller's array: never becomes a leaf's .grad itself

    _checks = _ops_checks()  # the sum kernels

    order, waiting = _topological_order(root)
    grads = {id(root): grad}
    # The gradient arrays handed to parents so far, by id (weakly, so each is freed when used; an id is checked
    # against its array because a freed array's id can be reused by a new one); repeats go to `shared`.
    handed = {}
    for node in reversed(order):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        if node._backward is None:  # a leaf
            _accumulate(node, g, shared)
            continue
        parent_grads = node._backward(g)
        if _anomaly.active:
            _anomaly.check_backward(node, g, parent_grads)
        for p, pg in zip(node._parents, parent_grads):
            if pg is None or not p.requires_grad:
                continue
            if pg.shape != p.shape:
                pg = _unbroadcast(pg, p.shape)
            r = handed.get(id(pg))
            if r is not None and r() is pg:
                shared[id(pg)] = r
            else:
                handed[id(pg)] = _ref(pg)
            prev = grads.get(id(p))
            if prev is None:
                grads[id(p)] = pg
            elif not (type(prev) is np.ndarray and sys.getrefcount(prev) <= _SOLE_REFS and owns_memory(prev)
                      and _checks.add_inplace(prev, pg)):
                grads[id(p)] = _checks.add(prev, pg)
        if waiting:
            # A leaf with a gradient-ready hook is finished as soon as its last consumer has run, not
            # where the reverse order reaches it (for a layer's weights that is often after the whole
            # rest of the network), so its hook fires as early as the gradient exists. Same sums.
            for p in node._parents:
                left = waiting.get(id(p))
                if left is not None:
                    waiting[id(p)] = left - 1
                    if left == 1 and id(p) in grads:
                        _accumulate(p, grads.pop(id(p)), shared)
        if not retain_graph:  # this node's backward has run: its closure and links to its parents go
            node._backward = _freed_graph
            node._parents = ()

def _topological_order(root) -> tuple:
    """Every tensor of the graph that requires grad, parents before children (iterative DFS), and for
    each leaf that has gradient-ready hooks the number of its consumers in the graph."""
    order, seen, waiting = [], set(), {}
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        if node._backward is _freed_graph:
            raise RuntimeError("backward: the graph was freed by an earlier backward(); pass "
                               "retain_graph=True to the first call to go through it twice")
        for p in node._parents:
            if p._grad_hooks:
                waiting[id(p)] = waiting.get(id(p), 0) + 1
            if p.requires_grad and id(p) not in seen:
                stack.append((p, False))
    return order, waiting


def _ref(a):
    """A weak reference to `a` (a strong one for the few objects that take no weak reference)."""
    try:
        return weakref.ref(a)
    except TypeError:
        return lambda: a


def _accumulate(leaf, g, shared: dict) -> None:
    """Adds a leaf's complete gradient of this backward to leaf.grad, then runs its gradient-ready hooks."""
    # The leaf keeps the array a backward made for it (most are fresh kernel outputs), copied only when it
    # might be seen elsewhere (a view, an array handed to two parents, the caller's: ids in `shared`) or the
    # optimizers could not use it (not C-contiguous, other dtype).
    prev = leaf.grad
    if prev is None:
        r = shared.get(id(g))
        if (type(g) is not np.ndarray or not owns_memory(g) or (r is not None and r() is g) or g.dtype != leaf.dtype
                or not _owned_layout(g.flags)):
            g = np.array(g, dtype=leaf.dtype, order="C")
        leaf.grad = g
    else:  # a second backward before zero_grad (gradient accumulation): the threaded sum kernels, NumPy's bits
        _checks = _ops_checks()
        if type(g) is not np.ndarray or g.dtype != leaf.dtype:
            g = np.asarray(g, dtype=leaf.dtype)
        # Into leaf.grad itself where nothing else holds it (as the engine sums a tensor's gradients above):
        # an array the caller kept from an earlier backward is never changed under it. g itself is only read.
        if not (type(prev) is np.ndarray and sys.getrefcount(prev) <= _SOLE_REFS and owns_memory(prev)
                and _checks.add_inplace(prev, g)):
            g = _checks.add(prev, g)
            if type(g) is not np.ndarray or not _owned_layout(g.flags):
                g = np.array(g, dtype=leaf.dtype, order="C")
            leaf.grad = g
    if leaf._grad_hooks:
        rec = _capture.current()
        if rec is not None:  # nnx.compile: a replay would not run the hook (e.g. a data-parallel all-reduce)
            rec.refuse("a gradient-ready hook (e.g. a distributed all-reduce) runs Python between kernels")
    for hook in leaf._grad_hooks:
        hook(leaf)


def _owned_layout(f) -> bool:
    # What the optimizers' in-place updates need of a .grad (f: its flags, read once).
    return f.c_contiguous and f.aligned and f.writeable


def _freed_graph(g):  # pragma: no cover - only a marker, never called
    raise RuntimeError("graph freed")
