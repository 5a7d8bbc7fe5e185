"""Anomaly detection: find the op that first turned finite numbers into NaN or Inf.

Inside `detect_anomaly()` every forward op (each Tensor produced by Tensor._make) and every backward
closure checks its output; the first one that produces a non-finite value raises AnomalyError naming the
op, the module that called it ("features.3 (Conv2d)") and, in backward, the forward op the gradient
belongs to. An op only *produced* a non-finite value when it came from finite inputs: ops that merely
carry a NaN that entered earlier (a NaN in the data, or a parameter that is already NaN) are not
reported, so the error points at the origin instead of at every op downstream. Element-wise ops are
judged per element, so a new NaN is still caught next to one that was already there.

The mode is per thread, like no_grad. Its cost when off is one integer test per op, per backward node and
per Module call: `active` counts the threads that have the mode on, and only when it is non-zero is the
thread-local flag consulted.
"""
from __future__ import annotations

import contextlib
import threading

import numpy as np

# Number of threads whose anomaly mode is on; the hot paths test only this.
active = 0
_count_lock = threading.Lock()
_local = threading.local()

# Ops whose output element i depends only on element i of each (broadcast) input; their results are
# checked per element. Every other op is judged as a whole.
_ELEMENTWISE = frozenset({"add", "sub", "mul", "div", "neg", "pow", "sqrt", "exp", "log", "abs", "astype",
                          "relu", "sigmoid", "tanh", "leaky_relu", "elu", "dropout"})


class AnomalyError(RuntimeError):
    """An op produced NaN or Inf from finite values inside detect_anomaly().

    Attributes: op (the op that produced it, "log" or "conv2d_backward"), phase ("forward" or
    "backward"), forward_op (in backward, the forward op whose gradient it is; else equal to op) and
    module ("features.3 (Conv2d)", or None when no nnx.nn.Module was running)."""

    def __init__(self, message: str, op: str, phase: str, forward_op: str, module: str | None):
        super().__init__(message)
        self.op, self.phase, self.forward_op, self.module = op, phase, forward_op, module


def is_anomaly_enabled() -> bool:
    """Whether anomaly detection is on in this thread."""
    return getattr(_local, "enabled", False)


def set_detect_anomaly(mode: bool) -> None:
    """Turns anomaly detection on or off for the calling thread (detect_anomaly() is the scoped form)."""
    global active
    mode = bool(mode)
    if mode == is_anomaly_enabled():
        return
    with _count_lock:
        active += 1 if mode else -1
    _local.enabled = mode


class detect_anomaly(contextlib.ContextDecorator):
    """Context manager and decorator: inside it, the first forward or backward op that produces NaN or Inf
    raises AnomalyError naming the op and the calling module. Nested uses restore the outer mode on exit;
    detect_anomaly(False) switches it off inside an enabled block."""

    def __init__(self, mode: bool = True):
        self.mode = bool(mode)
        self._prev = []

    def __enter__(self):
        self._prev.append(is_anomaly_enabled())
        set_detect_anomaly(self.mode)
        return self

    def __exit__(self, *exc):
        set_detect_anomaly(self._prev.pop())
        return False

    def _recreate_cm(self):  # a decorated function gets a fresh context per call (threads share none)
        return type(self)(self.mode)


# ----------------------------------------------------------------- the module call stack
def _module_stack() -> list:
    stack = getattr(_local, "modules", None)
    if stack is None:
        stack = _local.modules = []
    return stack


def call_module(module, args, kwargs):
    """Module.__call__'s path while some thread has anomaly mode on: runs forward with the module on this
    thread's call stack, so ops can name the module that called them."""
    if not is_anomaly_enabled():
        return module.forward(*args, **kwargs)
    stack = _module_stack()
    stack.append(module)
    try:
        return module.forward(*args, **kwargs)
    finally:
        stack.pop()


def _current_caller():
    """(outermost module, innermost module) of this thread's module call stack, or None."""
    stack = getattr(_local, "modules", None)
    return (stack[0], stack[-1]) if stack else None


def _module_name(caller) -> str | None:
    """ "features.3 (Conv2d)": the innermost running module, by its path in the outermost one."""
    if caller is None:
        return None
    root, module = caller
    cls = type(module).__name__
    if module is root:
        return f"{cls} (the top-level module)"
    for name, m in root.named_modules():
        if m is module:
            return f"{name} ({cls})"
    return f"{cls} (not registered in {type(root).__name__})"


# ----------------------------------------------------------------- the checks
def _nonfinite_summary(a: np.ndarray, bad: np.ndarray) -> str:
    vals = a[bad]
    kinds = [(np.isnan(vals).sum(), "NaN"), (np.isposinf(vals).sum(), "+Inf"), (np.isneginf(vals).sum(), "-Inf")]
    return ", ".join(f"{int(n)} {name}" for n, name in kinds if n) + f" of {a.size} values"


def _new_nonfinite(out: np.ndarray, sources, elementwise: bool):
    """Boolean mask of the elements of `out` that are non-finite although every source was finite (per
    element for element-wise ops, as a whole otherwise), or None when there are none."""
    if out.dtype.kind not in "fc":
        return None
    bad = ~np.isfinite(out)
    if not bad.any():
        return None
    if elementwise:
        for s in sources:
            if s.size and s.dtype.kind in "fc":
                finite = np.isfinite(s)
                try:
                    bad &= np.broadcast_to(finite, out.shape)
                except ValueError:  # not broadcastable to the output: this source is judged as a whole
                    if not finite.all():
                        return None
        return bad if bad.any() else None
    for s in sources:
        if s.dtype.kind in "fc" and not np.isfinite(s).all():
            return None
    return bad


def check_forward(out, data: np.ndarray, parents, op: str) -> None:
    """Called by Tensor._make while some thread has anomaly mode on."""
    if not is_anomaly_enabled():
        return
    caller = _current_caller()
    out._anomaly_caller = caller
    bad = _new_nonfinite(data, [p.data for p in parents], op in _ELEMENTWISE)
    if bad is None:
        return
    module = _module_name(caller)
    where = f"called from module {module}" if module else "called outside any nnx.nn.Module"
    raise AnomalyError(
        f"detect_anomaly: forward op {op!r} produced non-finite values from finite inputs "
        f"({_nonfinite_summary(data, bad)}, output shape {data.shape}), {where}",
        op=op, phase="forward", forward_op=op, module=module)


def check_backward(node, g: np.ndarray, parent_grads) -> None:
    """Called by Tensor.backward after node's backward closure, while some thread has anomaly mode on."""
    if not is_anomaly_enabled():
        return
    sources = [g, node.data] + [p.data for p in node._parents]
    elementwise = node._op in _ELEMENTWISE
    for i, (p, pg) in enumerate(zip(node._parents, parent_grads)):
        if pg is None or not p.requires_grad:
            continue
        pg = np.asarray(pg)
        bad = _new_nonfinite(pg, sources, elementwise and pg.shape == node.data.shape)
        if bad is None:
            continue
        caller = getattr(node, "_anomaly_caller", False)
        module = _module_name(caller) if caller is not False else None
        if caller is False:
            where = "its forward ran outside detect_anomaly, so the calling module is unknown"
        elif module:
            where = f"the forward was called from module {module}"
        else:
            where = "the forward was called outside any nnx.nn.Module"
        op = f"{node._op}_backward"
        raise AnomalyError(
            f"detect_anomaly: backward op {op!r} (the gradient of forward op {node._op!r}) produced non-finite "
            f"values in the gradient of its input {i} from a finite incoming gradient and finite forward "
            f"values ({_nonfinite_summary(pg, bad)}, gradient shape {pg.shape}); {where}",
            op=op, phase="backward", forward_op=node._op, module=module)
