"""The graph under construction and the registry that maps module classes to their exporters.

An exporter is `fn(g, module, prefix, *inputs) -> outputs`: it appends ONNX nodes to `g` for one module
and returns the names of the values it produced (a str, or a tuple of them for a module that returns a
tuple). Inputs are `Value`s: the ONNX name together with the array nnx computed for the example input,
so an exporter can read shapes and ranks; `g.call` runs the module itself on those arrays to give its
outputs their example values. Parameters become initializers named by their state_dict keys, so
`load_weights` can put them back.

This file imports neither `onnx` nor anything optional: node and tensor constructors are taken from the
`onnx` module handed to the Graph.
"""
from __future__ import annotations

import numpy as np

from ..nn import Module
from ..tensor import Tensor, no_grad


class UnsupportedModuleError(TypeError):
    """The exporter has no translation for this module (a user-defined forward, or an unknown layer)."""


class Value:
    """A value of the graph: its ONNX name and the array nnx computed for the example input."""

    __slots__ = ("name", "array")

    def __init__(self, name: str, array: np.ndarray):
        self.name, self.array = name, array

    @property
    def shape(self) -> tuple:
        return self.array.shape

    @property
    def ndim(self) -> int:
        return self.array.ndim


class _Entry:
    __slots__ = ("export", "weights")

    def __init__(self, export, weights):
        self.export, self.weights = export, weights


_REGISTRY: dict = {}


def register(cls, weights=None):
    """Decorator: `fn(g, module, prefix, *inputs)` exports modules of class `cls` (and of subclasses that
    keep its forward). `weights(module, prefix, initializers) -> {state_dict key: array}` inverts any
    layout change the exporter made to the parameters (for load_weights); the default reads each
    parameter and buffer from the initializer of the same dotted name."""
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise TypeError(f"cls: expected a subclass of nnx.nn.Module, got {cls!r}")

    def deco(fn):
        _REGISTRY[cls] = _Entry(fn, weights)
        return fn

    return deco


def lookup(module, where: str = "") -> _Entry:
    """The registry entry for `module`, or UnsupportedModuleError saying why there is none."""
    if not isinstance(module, Module):
        raise UnsupportedModuleError(f"{where or 'model'}: expected an nnx.nn.Module, got {type(module).__name__}")
    return lookup_class(type(module), where)


def lookup_class(t: type, where: str = "") -> _Entry:
    where = f"{where} " if where else ""
    for cls in t.__mro__:
        if cls is Module:
            break
        entry = _REGISTRY.get(cls)
        if entry is None:
            continue
        if cls is t or t.forward is cls.forward:
            return entry
        raise UnsupportedModuleError(
            f"{where}({t.__qualname__}): cannot export, its class subclasses {cls.__module__}.{cls.__qualname__} "
            f"but overrides forward() with Python code the exporter cannot read; keep the parent's forward, or "
            f"register an exporter with @nnx.onnx.register({t.__name__})")
    if t.forward is Module.forward:
        raise UnsupportedModuleError(
            f"{where}({t.__qualname__}): cannot export, it has no forward() of its own (a container such as "
            f"ModuleList is run by the forward of the module that holds it)")
    raise UnsupportedModuleError(
        f"{where}({t.__qualname__}): cannot export a user-defined Module whose forward() is arbitrary Python; "
        f"nnx.onnx translates nnx.nn's layers and the containers Sequential and Residual. Build the model "
        f"from those, or register an exporter with @nnx.onnx.register({t.__name__})")


def _as_array(out):
    if isinstance(out, Tensor):
        return out.data
    if isinstance(out, (tuple, list)):
        return tuple(_as_array(o) for o in out)
    return np.asarray(out)


def _zip(names, arrays, where: str):
    if isinstance(names, str):
        if isinstance(arrays, tuple):
            raise RuntimeError(f"{where}: the exporter gave one output, the module returned {len(arrays)}")
        return Value(names, arrays)
    if not isinstance(arrays, tuple) or len(arrays) != len(names):
        raise RuntimeError(f"{where}: the exporter gave {len(names)} outputs, the module returned another structure")
    return tuple(_zip(n, a, where) for n, a in zip(names, arrays))


def _raw(v):
    if v is None:
        return None
    return v.array if isinstance(v, Value) else tuple(_raw(x) for x in v)


class Graph:
    """Nodes and initializers of the model being exported; names are unique within it."""

    def __init__(self, onnx, opset: int, dtype: np.dtype, reserved=()):
        self.onnx, self.opset, self.dtype = onnx, opset, np.dtype(dtype)
        self.nodes: list = []
        self.initializers: dict = {}  # name -> TensorProto, in order of first use
        self._param_ids: dict = {}    # id(array) -> (array, initializer name): a shared parameter is stored once
        self._taken = set(reserved)

    # ----------------------------------------------------------------- names and constants
    def fresh(self, hint: str) -> str:
        name, i = hint, 1
        while name in self._taken:
            name = f"{hint}_{i}"
            i += 1
        self._taken.add(name)
        return name

    def param(self, name: str, array) -> str:
        """A parameter or buffer as an initializer called `name` (its state_dict key)."""
        array = np.asarray(array.data if isinstance(array, Tensor) else array)
        if id(array) in self._param_ids:
            return self._param_ids[id(array)][1]
        if name in self._taken:
            raise ValueError(f"names: {name!r} is both a graph input/output name and a parameter of the model")
        self._taken.add(name)
        self._param_ids[id(array)] = (array, name)  # holding the array keeps its id from being reused
        self.initializers[name] = self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name)
        return name

    def const(self, array, hint: str = "const") -> str:
        """A constant the exporter made up (shapes, axes, scalars), as an initializer of its own."""
        name = self.fresh(hint)
        self.initializers[name] = self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name)
        return name

    def ints(self, values, hint: str = "shape") -> str:
        return self.const(np.asarray(values, dtype=np.int64).reshape(-1), hint)

    def scalar(self, value, hint: str = "scalar") -> str:
        return self.const(np.asarray(value, dtype=self.dtype), hint)

    # ----------------------------------------------------------------- nodes
    def node(self, op: str, inputs, n_out: int = 1, hint: str = "", **attrs):
        """Appends one node; returns its output name (or a tuple of n_out names)."""
        base = hint or op.lower()
        outs = [self.fresh(base if n_out == 1 else f"{base}_{i}") for i in range(n_out)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), outs, name=self.fresh(f"{base}_node"),
                                                     **attrs))
        return outs[0] if n_out == 1 else tuple(outs)

    def reduce(self, op: str, x: str, axes, keepdims: int = 1, hint: str = "") -> str:
        """ReduceMean, ReduceMax, ... over `axes`: their axes moved from attribute to input in opset 18."""
        if self.opset >= 18:
            return self.node(op, [x, self.ints(axes, "axes")], hint=hint, keepdims=keepdims)
        return self.node(op, [x], hint=hint, axes=list(axes), keepdims=keepdims)

    # ----------------------------------------------------------------- the module walk
    def call(self, module, inputs, prefix: str):
        """Exports `module` applied to `inputs` (Values) and returns its outputs as Values."""
        where = prefix or "model"
        try:
            entry = lookup(module, where)
        except UnsupportedModuleError:
            if not isinstance(module, Module) or type(module).forward is Module.forward:
                raise
            from ._trace import trace  # a forward of the user's own: run it once and read the graph
            names = trace(self, module, prefix, *inputs)
        else:
            names = entry.export(self, module, prefix, *inputs)
        with no_grad():
            out = module(*[_raw(v) for v in inputs])
        return _zip(names, _as_array(out), where)


def child(prefix: str, name: str) -> str:
    """The dotted state_dict prefix of a child module."""
    return f"{prefix}.{name}" if prefix else name
