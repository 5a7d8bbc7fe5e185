"""nnx.onnx: models out to ONNX (run them with onnxruntime where nnx is not installed) and weights in.

    nnx.onnx.export(model, example_input, "model.onnx")      # needs the optional extra nnx[onnx]
    nnx.onnx.load_weights(model, "model.onnx")              # initializers -> a matching nnx model

The exporter walks the module tree in eval mode and writes each nnx.nn layer as the ONNX operators that
compute the same function; parameters and buffers become initializers named by their state_dict keys.
A module whose forward() is user-written Python is traced (run once on the example, its autograd graph
read back: see _trace.py); one using an operation the tracer cannot translate is refused naming it.
`@nnx.onnx.register(MyModule)` gives a class a translation of its own.

The `onnx` package is imported only when export or load_weights runs: `import nnx` never needs it.
"""
from __future__ import annotations

import os

import numpy as np

from ..nn import Module
from ..tensor import Tensor
from ._graph import UnsupportedModuleError, Value, lookup, lookup_class, register
from . import _layers  # noqa: F401  (fills the registry)
from . import _recurrent  # noqa: F401

__all__ = ["export", "load_weights", "register", "UnsupportedModuleError", "exportable", "NOT_EXPORTED",
           "not_exported_reason", "MIN_OPSET", "MAX_OPSET"]

# Opset 13 is the first where Softmax/LogSoftmax normalise along one axis (as nnx does); 21 is the newest
# checked against onnxruntime here. The IR version written is the oldest that the opset needs, not the
# newest the onnx wheel knows, since runtimes refuse IR versions newer than they were built for.
MIN_OPSET, MAX_OPSET = 13, 21

# Classes exported from nnx.nn that are not layers of a model to export, and why. Besides these, every
# training loss (a class defined in nnx.nn.loss) is left out of deployed models.
NOT_EXPORTED = {
    "Module": "the base class (a subclass with a forward() of its own is traced)",
    "ModuleList": "a container without a forward() of its own (the forward that iterates it is Python)",
}


def not_exported_reason(cls):
    """Why modules of class `cls` are not meant to be exported (None for a layer that should be)."""
    if cls.__name__ in NOT_EXPORTED:
        return NOT_EXPORTED[cls.__name__]
    if cls.__module__ == "nnx.nn.loss":
        return "a training loss, not part of the deployed model"
    return None


def _require_onnx():
    try:
        import onnx
    except ImportError as exc:
        raise ImportError("nnx.onnx needs the 'onnx' package: pip install 'nnx[onnx]' (or pip install onnx)") from exc
    return onnx


def exportable(cls) -> bool:
    """Whether nnx.onnx has a translation of class `cls` (a Module subclass with a forward() of its own
    has none, and is traced instead)."""
    try:
        lookup_class(cls)
    except UnsupportedModuleError:
        return False
    return True


def _check_opset(opset) -> int:
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset: expected an integer from {MIN_OPSET} to {MAX_OPSET}, got {opset!r}")
    return int(opset)


def _name_list(names, which: int, n: int, default: str) -> list:
    """Input (which=0) or output (which=1) names from export's `names` argument."""
    if names is not None and (not isinstance(names, (tuple, list)) or len(names) != 2):
        raise ValueError(f"names: expected (input names, output names), got {names!r}")
    v = None if names is None else names[which]
    if v is None:
        return [default] if n == 1 else [f"{default}{i}" for i in range(n)]
    v = [v] if isinstance(v, str) else list(v)
    if len(v) != n or not all(isinstance(s, str) and s for s in v):
        raise ValueError(f"names: expected {n} non-empty {default} name(s), got {v!r}")
    return v


def _flat(v):
    return [v] if isinstance(v, Value) else [x for item in v for x in _flat(item)]


def _example_arrays(example_input, dtype):
    """(flat list of float arrays, structure): the structure is example_input with each array replaced by
    its index in the flat list, so tuple arguments such as an LSTM's (h0, c0) keep their shape."""
    flat = []

    def walk(x):
        if isinstance(x, (tuple, list)):
            return tuple(walk(item) for item in x)
        if x is None:  # an optional argument left out, e.g. forward(x, None, lengths)
            return None
        a = np.asarray(x.data if isinstance(x, Tensor) else x)
        if a.dtype.kind not in "fiu":
            raise TypeError(f"example_input: expected floating-point (or integer id) arrays, input {len(flat)} "
                            f"has dtype {a.dtype}")
        if a.ndim == 0:
            raise ValueError(f"example_input: input {len(flat)} must have a batch axis, got a 0-d array")
        flat.append(np.ascontiguousarray(a, dtype=dtype if a.dtype.kind == "f" else np.int64))
        return len(flat) - 1

    structure = walk(example_input)
    return flat, (structure if isinstance(structure, tuple) else (structure,))


def _rebuild(structure, leaves):
    if isinstance(structure, tuple):
        return tuple(_rebuild(s, leaves) for s in structure)
    return None if structure is None else leaves[structure]


def _batch_axes(dynamic_batch, arrays) -> list:
    """The batch axis of each flat input (None: fixed)."""
    if dynamic_batch is True or dynamic_batch is False:
        return [0 if dynamic_batch else None] * len(arrays)
    axes = list(dynamic_batch) if isinstance(dynamic_batch, (tuple, list)) else None
    if axes is None or len(axes) != len(arrays) or not all(
            a is None or (isinstance(a, int) and not isinstance(a, bool) and 0 <= a < x.ndim)
            for a, x in zip(axes, arrays)):
        raise ValueError(f"dynamic_batch: expected True, False or one batch axis (or None) per input array "
                         f"({len(arrays)} of shapes {[x.shape for x in arrays]}), got {dynamic_batch!r}")
    return axes


def _build(onnx, model, arrays, structure, opset, in_names, names):
    from ._graph import Graph

    # Output names are only known to be free if reserved before the walk names its values.
    out = [] if names is None or names[1] is None else ([names[1]] if isinstance(names[1], str) else list(names[1]))
    reserved = set(in_names) | {s for s in out if isinstance(s, str)} | {f"output{i}" for i in range(64)}
    g = Graph(onnx, opset, np.float32, reserved=reserved | {"output"})
    outs = g.call(model, _rebuild(structure, [Value(n, a) for n, a in zip(in_names, arrays)]), "")
    return g, _flat(outs if isinstance(outs, tuple) else (outs,))


def _free_input_axes(batch_axes, dynamic_axes, in_names, arrays) -> list:
    """Per input array, {axis: dimension name}: the batch axis ("batch") and those of dynamic_axes."""
    free = [{} if a is None else {a: "batch"} for a in batch_axes]
    if dynamic_axes is None:
        return free
    if not isinstance(dynamic_axes, dict):
        raise ValueError(f"dynamic_axes: expected {{input name: {{axis: dimension name}}}}, got {dynamic_axes!r}")
    for name, axes in dynamic_axes.items():
        if name not in in_names:
            raise ValueError(f"dynamic_axes: {name!r} is not an input name (the inputs are {in_names})")
        i = in_names.index(name)
        if not isinstance(axes, dict) or not all(
                isinstance(a, int) and not isinstance(a, bool) and 0 <= a < arrays[i].ndim and isinstance(d, str) and d
                for a, d in axes.items()):
            raise ValueError(f"dynamic_axes[{name!r}]: expected {{axis: dimension name}} with axes of its shape "
                             f"{arrays[i].shape}, got {axes!r}")
        free[i].update(axes)
    return free


def export(model, example_input, path, *, opset: int = 17, dynamic_batch=True, names=None, dynamic_axes=None):
    """Writes `model` (evaluated in eval mode) as an ONNX file at `path` and returns the ModelProto.

    example_input: an array, or a tuple with one entry per forward argument (an entry may itself be a
    tuple, as an LSTM's (h0, c0), or None for an argument left out, as in (x, None, lengths)); its values
    only give the shapes. Float arrays become float32 inputs, integer arrays (an Embedding's ids, a
    recurrent layer's lengths) int64 ones. dynamic_batch: True leaves axis 0 of
    every input array free (named "batch") and, in the outputs, every axis that grows with it, so one file
    serves any batch size; False fixes every shape; or a list with the batch axis (or None) of each input
    array in order (e.g. [1] for a time-major LSTM's (T, B, I) input, [0, 1, 1] with its h0 and c0).
    dynamic_axes frees more input axes, by input name: {"input": {1: "time"}} for a batch-first sequence;
    output axes that grow with each named dimension get its name.
    names: (input names, output names), each a string or a list of strings (default "input"/"output",
    numbered when several). opset: from MIN_OPSET to MAX_OPSET; the IR version written is the oldest that
    opset needs. The model must be float32 (onnxruntime's CPU kernels are float32); its train/eval flags
    are restored afterwards. A module with a forward() of the user's own is traced on the example (Python
    branches follow the example's path). Raises UnsupportedModuleError naming a module it cannot translate."""
    onnx = _require_onnx()
    if not isinstance(model, Module):
        raise TypeError(f"model: expected an nnx.nn.Module, got {type(model).__name__}")
    opset = _check_opset(opset)
    if opset > onnx.defs.onnx_opset_version():
        raise ValueError(f"opset: the installed onnx {onnx.__version__} knows opsets up to "
                         f"{onnx.defs.onnx_opset_version()}, got {opset}; upgrade onnx or pick a lower opset")
    dtypes = {p.dtype for p in model.parameters()}
    if dtypes - {np.dtype(np.float32)}:
        raise TypeError(f"model: expected float32 parameters (onnxruntime runs float32), got "
                        f"{sorted(str(d) for d in dtypes)}; export a float32 copy (model.float())")
    arrays, structure = _example_arrays(example_input, np.float32)
    axes = _batch_axes(dynamic_batch, arrays)
    modes = {id(m): (m, m.training) for m in model.modules()}
    model.eval()
    try:
        in_names = _name_list(names, 0, len(arrays), "input")
        g, outs = _build(onnx, model, arrays, structure, opset, in_names, names)
        out_names = _name_list(names, 1, len(outs), "output")
        if len(set(in_names + out_names)) != len(in_names) + len(out_names):
            raise ValueError(f"names: input and output names must all differ, got {in_names + out_names}")
        free_in = _free_input_axes(axes, dynamic_axes, in_names, arrays)
        free_out = _free_axes(model, arrays, structure, free_in, outs)
    finally:
        for m, flag in modes.values():
            m.training = flag
    helper, TP = onnx.helper, onnx.TensorProto
    for o, name in zip(outs, out_names):
        g.nodes.append(helper.make_node("Identity", [o.name], [name], name=g.fresh(f"{name}_node")))

    def info(name, a, free):
        dims = [free.get(i, int(d)) for i, d in enumerate(a.shape)]
        return helper.make_tensor_value_info(name, TP.FLOAT if a.dtype.kind == "f" else TP.INT64, dims)

    graph = helper.make_graph(
        g.nodes, type(model).__name__,
        [info(n, a, f) for n, a, f in zip(in_names, arrays, free_in)],
        [info(n, o.array, f) for n, o, f in zip(out_names, outs, free_out)],
        initializer=list(g.initializers.values()))
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="nnx",
                              ir_version=helper.find_min_ir_version_for(opsets))
    from .. import __version__
    proto.producer_version = __version__
    onnx.checker.check_model(proto, full_check=True)
    onnx.save_model(proto, os.fspath(path))
    return proto


def _free_axes(model, arrays, structure, free_in, outs) -> list:
    """Per output, {axis: dimension name}: the model runs once more for each named input dimension, that
    dimension grown by one, and the output axes that change take its name (None: grown by several)."""
    from ..tensor import no_grad

    found = [{} for _ in outs]
    for dim in sorted({d for f in free_in for d in f.values()}):
        more = list(arrays)
        for i, f in enumerate(free_in):
            for axis, d in f.items():
                if d == dim:
                    more[i] = np.concatenate([more[i], more[i].take([0], axis=axis)], axis=axis)
        with no_grad():
            out = model(*_rebuild(structure, more))
        flat = [o.data if isinstance(o, Tensor) else np.asarray(o) for o in _flat_outputs(out)]
        for fo, o, f in zip(found, outs, flat):
            for i, (a, b) in enumerate(zip(o.array.shape, f.shape)):
                if a != b:
                    fo[i] = None if i in fo else dim
    return found


def _flat_outputs(out):
    if isinstance(out, (tuple, list)):
        return [x for item in out for x in _flat_outputs(item)]
    return [out]


def load_weights(model, path):
    """Copies the initializers of the ONNX file at `path` into `model`'s parameters and buffers (in place)
    and returns the model. Each layer takes the initializers named by its state_dict keys (the names nnx's
    exporter and PyTorch's give); layers the exporter stores in ONNX's own layout (recurrent weights) are
    converted back. Buffers ONNX does not carry (BatchNorm's num_batches_tracked) keep their values.
    Raises StateDictError naming missing initializers and shape mismatches."""
    onnx = _require_onnx()
    if not isinstance(model, Module):
        raise TypeError(f"model: expected an nnx.nn.Module, got {type(model).__name__}")
    try:
        proto = onnx.load_model(os.fspath(path))
    except OSError:
        raise
    except Exception as exc:  # protobuf's DecodeError and kin: the file is not an ONNX model
        raise ValueError(f"path: {os.fspath(path)} is not a readable ONNX model "
                         f"({type(exc).__name__}: {exc})") from None
    inits = _constant_values(onnx, proto.graph)
    state = model.state_dict()
    for prefix, m in model.named_modules():
        try:
            entry = lookup(m, prefix)
        except UnsupportedModuleError:
            entry = None
        own = [n for n, _ in m._own_parameters()] + [n for n, b in m._own_buffers() if b is not None]
        if entry is not None and entry.weights is not None:
            for n in own:
                if not n.endswith("num_batches_tracked"):
                    state[f"{prefix}.{n}" if prefix else n] = _Missing
            for k, v in entry.weights(m, prefix, inits).items():
                state[k] = v
            continue
        for n in own:
            k = f"{prefix}.{n}" if prefix else n
            if k in inits:
                state[k] = inits[k]
            elif not n.endswith("num_batches_tracked"):
                state[k] = _Missing
    missing = [k for k, v in state.items() if v is _Missing]
    if missing:
        from ..nn import StateDictError
        raise StateDictError(f"{os.fspath(path)}: no initializer for {', '.join(repr(k) for k in missing)} "
                             f"(the file has {', '.join(repr(k) for k in list(inits)[:20])}"
                             f"{', ...' if len(inits) > 20 else ''})")
    current = model.state_dict()
    for k, v in state.items():  # ONNX holds float32; a float64 model takes the same values widened
        v = np.asarray(v)
        if v.dtype != current[k].dtype and v.dtype.kind == current[k].dtype.kind == "f":
            state[k] = v.astype(current[k].dtype)
    model.load_state_dict(state)
    return model


_Missing = object()


def _constant_values(onnx, graph) -> dict:
    """name -> array of every value the graph holds as a constant: its initializers, Constant nodes, and
    Identity nodes of those (PyTorch's exporter stores one copy of equal tensors and names the others
    through Identity nodes, e.g. a fresh BatchNorm's running_var and weight)."""
    values = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]]
        elif node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    values[node.output[0]] = onnx.numpy_helper.to_array(a.t)
    return values
