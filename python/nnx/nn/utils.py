"""Training and inference utilities with PyTorch's names (torch.nn.utils)."""
from __future__ import annotations

import copy
import math

import numpy as np

from ..tensor import Tensor, enable_grad, no_grad
from .containers import Sequential
from .layers import BatchNorm2d, Conv2d, Identity
from .module import Module, Parameter, _structure

__all__ = ["clip_grad_norm_", "fuse_conv_bn_eval", "fuse_conv_bn"]


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False) -> float:
    """Scales the gradients of `parameters` in place so that their joint norm is at most max_norm, the
    remedy for exploding gradients through time: with N = ||(g_1, ..., g_k)||_p over every gradient,
    each g is multiplied by max_norm / (N + 1e-6) when that is below 1. Returns N (before clipping).
    Parameters without a gradient are skipped; norm_type may be float('inf') (the largest |g|)."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    max_norm, norm_type = float(max_norm), float(norm_type)
    if not max_norm >= 0:
        raise ValueError(f"max_norm: expected a non-negative number, got {max_norm}")
    if not norm_type > 0:
        raise ValueError(f"norm_type: expected a positive number or inf, got {norm_type}")
    if not grads:
        return 0.0
    if math.isinf(norm_type):
        total = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
    else:
        total = float(sum(float(np.sum(np.abs(g.astype(np.float64)) ** norm_type)) for g in grads) ** (1.0 / norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is {total}; "
                           f"pass error_if_nonfinite=False to clip anyway")
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g *= g.dtype.type(coef)
    return total


def fuse_conv_bn_eval(conv: Conv2d, bn: BatchNorm2d) -> Conv2d:
    """A new Conv2d that computes bn(conv(x)) for a BatchNorm2d in evaluation mode (its running statistics), as
    PyTorch's torch.nn.utils.fusion.fuse_conv_bn_eval: with s = weight / sqrt(running_var + eps) per channel, the
    filters become conv.weight * s and the bias (conv.bias - running_mean) * s + bn.bias (folded in float64, then
    rounded to the conv's dtype). For inference: one pass over the layer's output instead of two, and a following
    ReLU then fuses into the convolution. The values agree with the pair's to rounding, not bit for bit."""
    if type(conv) is not Conv2d or type(bn) is not BatchNorm2d:
        raise TypeError(f"fuse_conv_bn_eval: expected a Conv2d and a BatchNorm2d, got {type(conv).__name__} and "
                        f"{type(bn).__name__}")
    if conv.training or bn.training:
        raise ValueError("fuse_conv_bn_eval: both modules must be in evaluation mode (call .eval()): a training-mode "
                         "BatchNorm normalises by each batch's own statistics, which no fixed filters reproduce")
    if bn.running_mean is None:
        raise ValueError("fuse_conv_bn_eval: the BatchNorm2d has no running statistics (track_running_stats=False)")
    if bn.num_features != conv.out_channels:
        raise ValueError(f"fuse_conv_bn_eval: the BatchNorm2d normalises {bn.num_features} channels, the Conv2d "
                         f"makes {conv.out_channels}")
    dt = conv.weight.dtype
    scale = 1.0 / np.sqrt(bn.running_var.astype(np.float64) + float(bn.eps))
    if bn.weight is not None:
        scale = scale * bn.weight.data.astype(np.float64)
    bias = -bn.running_mean.astype(np.float64)
    if conv.bias is not None:
        bias = bias + conv.bias.data.astype(np.float64)
    bias = bias * scale
    if bn.bias is not None:
        bias = bias + bn.bias.data.astype(np.float64)
    fused = copy.deepcopy(conv)
    fused.weight = Parameter((conv.weight.data.astype(np.float64) * scale.reshape(-1, 1, 1, 1)).astype(dt))
    fused.bias = Parameter(bias.astype(dt))
    return fused


def fuse_conv_bn(model: Module, inplace: bool = False, example_input=None) -> Module:
    """The model (in evaluation mode) with every Conv2d directly followed by a BatchNorm2d folded into one Conv2d
    (fuse_conv_bn_eval). A copy unless inplace=True.

    Inside a Sequential (at any depth) the pair is found by position: the BatchNorm2d is removed, so a ReLU after
    it fuses into the convolution too, and the layers after it in that Sequential move up an index (their
    state_dict keys with them). A Conv2d and BatchNorm2d that a custom forward calls one after the other (a
    ResNet's blocks) are found by running the model once on example_input (an array or Tensor, or a tuple of
    them, as the model takes): a pair is folded where the BatchNorm2d's input is that Conv2d's output and nothing
    else reads it, each module called once. The Conv2d is replaced by the fused one and the BatchNorm2d by
    nnx.nn.Identity() (its state_dict keys go). What the run records is the path the example took: a forward
    whose Python branches on values could take another, so the fused model is checked against the original on
    the example and a RuntimeError raised where they disagree."""
    if not isinstance(model, Module):
        raise TypeError(f"model: expected an nnx.nn.Module, got {type(model).__name__}")
    if model.training:
        raise ValueError("fuse_conv_bn: call model.eval() first (the fold uses the running statistics)")
    if not inplace:
        model = copy.deepcopy(model)
    for m in list(model.modules()):
        if type(m) is not Sequential:
            continue
        layers, out, i = m._layers, [], 0
        while i < len(layers):
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if type(layers[i]) is Conv2d and type(nxt) is BatchNorm2d and nxt.running_mean is not None:
                out.append(fuse_conv_bn_eval(layers[i], nxt))
                i += 2
            else:
                out.append(layers[i])
                i += 1
        if len(out) != len(layers):
            m._layers = out
    if example_input is not None:
        _fuse_traced(model, example_input)
    return model


def _as_inputs(model: Module, example_input) -> tuple:
    """The example as the model's positional arguments, every floating array a Tensor of the model's dtype that
    requires a gradient (so each op on it records its parents)."""
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    dtype, out = model._param_dtype(), []
    for a in args:
        if isinstance(a, Tensor):
            a = a.data
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            a = Tensor(a.astype(dtype or a.dtype, copy=False), requires_grad=True)
        out.append(a)
    return tuple(out)


def _tensors(out):
    if isinstance(out, Tensor):
        yield out
    elif isinstance(out, (tuple, list)):
        for o in out:
            yield from _tensors(o)


def _arrays(out) -> list:
    return [t.data for t in _tensors(out)]


def _fuse_traced(model: Module, example_input) -> None:
    """fuse_conv_bn's pairs in custom forwards, found by one run of the model on the example (see there)."""
    args = _as_inputs(model, example_input)
    calls = {}  # id(module) -> [module, number of calls, input, output]
    original = Module.__call__

    def record(self, *a, **kw):
        out = original(self, *a, **kw)
        if type(self) in (Conv2d, BatchNorm2d):
            entry = calls.setdefault(id(self), [self, 0, None, None])
            entry[1] += 1
            entry[2], entry[3] = (a[0] if len(a) == 1 and not kw else None), out
        return out

    Module.__call__ = record
    try:
        with enable_grad():
            outputs = model(*args)
    finally:
        Module.__call__ = original
    want = _arrays(outputs)
    # How many ops read each tensor of the graph the run recorded (every op's parents, each op counted once).
    readers, seen = {}, set()
    stack = list(_tensors(outputs))
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        for p in t._parents:
            readers[id(p)] = readers.get(id(p), 0) + 1
            stack.append(p)
    returned = {id(t) for t in _tensors(outputs)}
    made_by = {id(e[3]): e for e in calls.values() if type(e[0]) is Conv2d and e[1] == 1}
    where = {}  # id(module) -> (parent, attribute name, list index or None)
    for parent in model.modules():
        for name, value in vars(parent).items():
            if isinstance(value, Module):
                where[id(value)] = (parent, name, None)
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        where[id(item)] = (parent, name, i)
    undo = []  # (slot, module it held): the model as it was, should the check below fail
    for bn, n, x, _ in calls.values():
        if type(bn) is not BatchNorm2d or n != 1 or bn.running_mean is None or x is None:
            continue
        conv_entry = made_by.get(id(x))
        if conv_entry is None or readers.get(id(x)) != 1 or id(x) in returned:
            continue
        conv = conv_entry[0]
        if id(conv) not in where or id(bn) not in where or conv.out_channels != bn.num_features:
            continue
        undo += [(where[id(conv)], conv), (where[id(bn)], bn)]
        _replace(where[id(conv)], fuse_conv_bn_eval(conv, bn))
        _replace(where[id(bn)], Identity())
    if undo:
        with no_grad():
            got = _arrays(model(*_as_inputs(model, example_input)))
        for g, w in zip(got, want):
            scale = float(np.abs(w).max()) if w.size else 0.0
            tol = (1e-3 if w.dtype == np.float32 else 1e-9) * max(scale, 1.0)
            if g.shape != w.shape or not np.allclose(g, w, rtol=0, atol=tol):
                for slot, module in undo:  # inplace=True: leave the caller's model as it was
                    _replace(slot, module)
                raise RuntimeError("fuse_conv_bn: the model with its folded pairs does not reproduce the original "
                                   "on example_input (its forward reads a Conv2d's output elsewhere, or branches "
                                   "on values); fold the pairs by hand with fuse_conv_bn_eval")


def _replace(slot, module: Module) -> None:
    parent, name, index = slot
    if index is None:
        setattr(parent, name, module)
    else:
        getattr(parent, name)[index] = module
        _structure[0] += 1  # as Module.__setattr__ does: a cached parameter walk may have changed
