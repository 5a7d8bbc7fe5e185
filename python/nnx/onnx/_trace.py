"""A small tracer for modules whose forward() is user-written Python.

The module runs once on the example with the inputs requiring gradients, so every Tensor op records its
parents (the autograd graph). Calls of modules that have an exporter (nnx.nn's layers, Sequential, ...)
are recorded as they return, and the graph is read back from the outputs: a recorded call is exported
by its module's exporter, a parameter becomes its initializer, a tensor computed from constants only
becomes a constant, and the Tensor operations listed in OPS become their ONNX nodes. Anything else
(slicing, reductions, transposes, functional ops with parameters such as F.conv2d) is refused with the
op's name, since the graph does not keep those ops' arguments.

What a trace records is the path the example took: Python branches on values or shapes are fixed to it.
A reshape keeps axis 0 as the batch axis (x.reshape(x.shape[0], -1) or x.reshape(-1, k)).
"""
from __future__ import annotations

from ..nn import Module, Parameter
from ..tensor import Tensor, enable_grad
from ._graph import UnsupportedModuleError, Value, child, lookup

# Tensor ops (their `_op` names) with no arguments beyond their inputs, and the ONNX op of each.
OPS = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "matmul": "MatMul", "neg": "Neg", "exp": "Exp",
       "log": "Log", "sqrt": "Sqrt", "abs": "Abs", "relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}


def _tensors(out, path=()):
    """(index path, Tensor) of every tensor in a module's output (a Tensor or nested tuples of them)."""
    if isinstance(out, Tensor):
        yield path, out
    elif isinstance(out, (tuple, list)):
        for i, o in enumerate(out):
            yield from _tensors(o, path + (i,))


def _record_calls(root, calls):
    """A Module.__call__ that records, for each call of an exportable module inside root's forward,
    every output tensor -> (module, args, output, index path) of the outermost such call."""
    original = Module.__call__

    def call(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if self is not root and not kwargs and all(isinstance(a, Tensor) for a in args):
            try:
                lookup(self)
            except UnsupportedModuleError:
                return out  # traced through: its own ops and calls are recorded instead
            for path, t in _tensors(out):
                # Identity/Dropout return their input itself. An outer call returns after the calls
                # inside it, so it overwrites them: a Sequential is exported whole.
                if all(t is not a for a in args):
                    calls[id(t)] = (self, args, out, path)
        return out

    return original, call


class _Emitter:
    def __init__(self, g, root, prefix, inputs, calls):
        self.g, self.prefix, self.calls = g, prefix or "model", calls
        self.names = {id(t): v.name for t, v in inputs}
        self.live = set(self.names)  # tensors computed from the inputs
        self.modules = {id(m): child(prefix, n) for n, m in root.named_modules() if n}
        self.params = {id(p): child(prefix, n) for n, p in root.named_parameters()}
        self.done_calls = set()

    def refuse(self, what: str):
        raise UnsupportedModuleError(
            f"{self.prefix}: cannot export its Python forward(): it uses {what}, which the tracer does not "
            f"translate (it handles nnx.nn layers, + - * / @, exp, log, sqrt, abs, relu, sigmoid, tanh, "
            f"reshape/flatten and nnx.cat); use an nnx.nn layer for it, or register an exporter with "
            f"@nnx.onnx.register")

    def name(self, t) -> str:
        """The ONNX name of tensor t, emitting what computes it first."""
        if id(t) in self.names:
            return self.names[id(t)]
        stack = [t]
        while stack:  # depth-first, parents before children, without Python recursion
            node = stack[-1]
            if id(node) in self.names:
                stack.pop()
                continue
            deps = self._deps(node)
            todo = [d for d in deps if id(d) not in self.names]
            if todo:
                stack.extend(todo)
                continue
            stack.pop()
            self._emit(node)
        return self.names[id(t)]

    def _deps(self, t):
        if id(t) in self.calls:
            return list(self.calls[id(t)][1])
        if isinstance(t, Parameter) or not t.requires_grad or not t._parents:
            return []
        return list(t._parents)

    def _emit(self, t):
        g = self.g
        if any(id(d) in self.live for d in self._deps(t)):
            self.live.add(id(t))
        if id(t) in self.calls:
            m, args, out, _ = self.calls[id(t)]
            ins = [Value(self.names[id(a)], a.data) for a in args]
            outs = g.call(m, ins, self.modules.get(id(m), self.prefix))
            flat = dict(_values(outs))
            for path, o in _tensors(out):
                self.names.setdefault(id(o), flat[path].name)
                if id(t) in self.live:
                    self.live.add(id(o))
            return
        if isinstance(t, Parameter) and id(t) in self.params:
            self.names[id(t)] = g.param(self.params[id(t)], t.data)
            return
        if not t.requires_grad or not t._parents:  # computed from constants (or a tensor of the user's)
            data = t.data if t.data.dtype.kind != "f" else t.data.astype(g.dtype)
            self.names[id(t)] = g.const(data, "const")
            return
        ins = [self.names[id(p)] for p in t._parents]
        op = t._op
        if op.endswith("+relu") and op[:-5] in OPS:  # a sum that absorbed the relu after it (F.relu)
            self.names[id(t)] = g.node("Relu", [g.node(OPS[op[:-5]], ins)])
        elif op in OPS:
            self.names[id(t)] = g.node(OPS[op], ins)
        elif op == "reshape":
            src = t._parents[0].shape
            shape = list(t.shape)
            if shape and src and shape[0] == src[0]:
                shape[0] = 0   # Reshape's 0 copies axis 0: the batch stays free
            elif shape:
                shape[0] = -1  # the batch goes into axis 0
            self.names[id(t)] = g.node("Reshape", [ins[0], g.ints(shape)])
        elif op == "cat":
            self.names[id(t)] = g.node("Concat", ins, axis=self._cat_axis(t))
        elif op == "astype" and t.dtype == t._parents[0].dtype:
            self.names[id(t)] = ins[0]
        else:
            self.refuse(f"the tensor operation {op!r}" if op else "a tensor made outside the graph")

    def _cat_axis(self, t) -> int:
        shapes = [p.shape for p in t._parents]
        for a in range(t.ndim):
            if sum(s[a] for s in shapes) == t.shape[a] and all(
                    s[:a] + s[a + 1:] == t.shape[:a] + t.shape[a + 1:] for s in shapes):
                return a
        self.refuse("nnx.cat with an axis the shapes do not determine")


def _values(v, path=()):
    if isinstance(v, Value):
        yield path, v
    else:
        for i, x in enumerate(v):
            yield from _values(x, path + (i,))


def trace(g, module, prefix, *inputs):
    """Exports `module` by running its forward once (see the module docstring); returns output names."""
    if any(not isinstance(v, Value) for v in inputs):
        raise UnsupportedModuleError(f"{prefix or 'model'}: the tracer takes array inputs, not tuples")
    tensors = [Tensor(v.array.copy(), requires_grad=True) for v in inputs]
    calls: dict = {}
    original, hooked = _record_calls(module, calls)
    Module.__call__ = hooked
    try:
        with enable_grad():
            out = original(module, *tensors)
    finally:
        Module.__call__ = original
    em = _Emitter(g, module, prefix, list(zip(tensors, inputs)), calls)
    flat = list(_tensors(out))
    if not flat:
        em.refuse(f"an output of type {type(out).__name__} (expected Tensors)")
    names = {path: em.name(t) for path, t in flat}
    if not any(id(t) in em.live for _, t in flat):
        em.refuse("outputs that do not depend on its inputs as the graph records them (a value computed with "
                  "NumPy from .data, or with the graph cut by detach(), would be exported as a constant)")
    return _structure(out, names)


def _structure(out, names, path=()):
    if isinstance(out, Tensor):
        return names[path]
    return tuple(_structure(o, names, path + (i,)) for i, o in enumerate(out))
