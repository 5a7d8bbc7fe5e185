"""Exporters of nnx.nn's layers and containers, each as it runs in eval mode.

Every translation keeps dimension 0 free (no shape in the graph bakes the batch size), so one file
serves any batch size when the export was made with dynamic_batch=True.
"""
from __future__ import annotations

import math

import numpy as np

from .. import nn
from .._args import pair
from ._graph import child, register


def _pads(padding) -> list:
    ph, pw = pair(padding, "padding", 0)
    return [ph, pw, ph, pw]  # ONNX: begin of each axis, then end of each axis


def _window(kernel_size, stride):
    k = pair(kernel_size, "kernel_size", 1)
    s = k if stride is None else pair(stride, "stride", 1)
    return list(k), list(s)


# --------------------------------------------------------------------------------------------- containers
@register(nn.Sequential)
def _sequential(g, m, prefix, *inputs):
    if len(inputs) != 1:
        raise ValueError(f"example_input: a Sequential takes one input, got {len(inputs)}")
    names = {id(c): n for n, c in m.named_children()}
    x = inputs[0]
    for layer in m:
        x = g.call(layer, [x], child(prefix, names[id(layer)]))
    return x.name if not isinstance(x, tuple) else _names(x)


def _names(v):
    return v.name if not isinstance(v, tuple) else tuple(_names(x) for x in v)


@register(nn.Residual)
def _residual(g, m, prefix, x):
    y = g.call(m.module, [x], child(prefix, "module"))
    return g.node("Add", [x.name, y.name], hint="residual")


@register(nn.Add)
def _add(g, m, prefix, a, b):
    return g.node("Add", [a.name, b.name])


@register(nn.Identity)
def _identity(g, m, prefix, x):
    return g.node("Identity", [x.name])


@register(nn.Dropout)
def _dropout(g, m, prefix, x):
    return g.node("Identity", [x.name], hint="dropout")  # eval mode: dropout passes x through


# --------------------------------------------------------------------------------------------- linear, conv
@register(nn.Linear)
def _linear(g, m, prefix, x):
    w = g.param(child(prefix, "weight"), m.weight)
    b = None if m.bias is None else g.param(child(prefix, "bias"), m.bias)
    if x.ndim == 2:
        return g.node("Gemm", [x.name, w] + ([b] if b else []), hint="linear", transB=1)
    # Extra leading axes: MatMul broadcasts over them; the transpose of a constant is folded by runtimes.
    y = g.node("MatMul", [x.name, g.node("Transpose", [w], perm=[1, 0])], hint="linear")
    return g.node("Add", [y, b], hint="linear_bias") if b else y


@register(nn.Conv2d)
def _conv2d(g, m, prefix, x):
    ins = [x.name, g.param(child(prefix, "weight"), m.weight)]
    if m.bias is not None:
        ins.append(g.param(child(prefix, "bias"), m.bias))
    return g.node("Conv", ins, kernel_shape=list(m.kernel_size), strides=list(m.stride), pads=_pads(m.padding),
                  dilations=list(m.dilation), group=m.groups)


# --------------------------------------------------------------------------------------------- pooling
@register(nn.MaxPool2d)
def _max_pool2d(g, m, prefix, x):
    k, s = _window(m.kernel_size, m.stride)
    return g.node("MaxPool", [x.name], kernel_shape=k, strides=s, pads=_pads(m.padding),
                  dilations=list(pair(m.dilation, "dilation", 1)))


@register(nn.AvgPool2d)
def _avg_pool2d(g, m, prefix, x):
    k, s = _window(m.kernel_size, m.stride)
    # nnx (as PyTorch by default) counts padded positions as zeros in the mean.
    return g.node("AveragePool", [x.name], kernel_shape=k, strides=s, pads=_pads(m.padding), count_include_pad=1)


@register(nn.LPPool2d)
def _lp_pool2d(g, m, prefix, x):
    k, s = _window(m.kernel_size, m.stride)
    p = float(m.norm_type)
    if p == math.inf:  # the maximum of |x|
        return g.node("MaxPool", [g.node("Abs", [x.name])], hint="lp_pool", kernel_shape=k, strides=s)
    # ONNX's LpPool sums |x|^p with an integer p; nnx (as PyTorch) sums x^p for any real p, so a negative x
    # with odd p counts negatively. Hence pow, a window sum (mean times the window size), then the root.
    t = x.name if p == 1.0 else g.node("Pow", [x.name, g.scalar(p, "p")])
    t = g.node("AveragePool", [t], kernel_shape=k, strides=s)
    t = g.node("Mul", [t, g.scalar(k[0] * k[1], "window")])
    return t if p == 1.0 else g.node("Pow", [t, g.scalar(1.0 / p, "inv_p")], hint="lp_pool")


@register(nn.GlobalAvgPool2d)
def _global_avg_pool2d(g, m, prefix, x):
    return g.node("GlobalAveragePool", [x.name])  # (N, C, 1, 1), as the layer returns


@register(nn.Flatten)
def _flatten(g, m, prefix, x):
    nd = max(x.ndim, 1)
    s, e = m.start_dim % nd, m.end_dim % nd
    if s == 1 and e == nd - 1:
        return g.node("Flatten", [x.name], axis=1)
    shape = list(x.shape[:s]) + [int(np.prod(x.shape[s:e + 1]))] + list(x.shape[e + 1:])
    if s > 0:
        shape[0] = 0   # Reshape's 0 copies the input's dimension: the batch stays free
    else:
        shape[0] = -1  # the merged axis holds the batch; the other axes are fixed by the layer
    return g.node("Reshape", [x.name, g.ints(shape)], hint="flatten")


# --------------------------------------------------------------------------------------------- activations
@register(nn.ReLU)
def _relu(g, m, prefix, x):
    return g.node("Relu", [x.name])


@register(nn.Sigmoid)
def _sigmoid(g, m, prefix, x):
    return g.node("Sigmoid", [x.name])


@register(nn.Tanh)
def _tanh(g, m, prefix, x):
    return g.node("Tanh", [x.name])


@register(nn.LeakyReLU)
def _leaky_relu(g, m, prefix, x):
    return g.node("LeakyRelu", [x.name], alpha=float(m.negative_slope))


@register(nn.ELU)
def _elu(g, m, prefix, x):
    return g.node("Elu", [x.name], alpha=float(m.alpha))


@register(nn.Softmax)
def _softmax(g, m, prefix, x):
    return g.node("Softmax", [x.name], axis=int(m.dim))  # opset >= 13: normalised along this axis only


@register(nn.LogSoftmax)
def _log_softmax(g, m, prefix, x):
    return g.node("LogSoftmax", [x.name], axis=int(m.dim))


# --------------------------------------------------------------------------------------------- batch norm
def _batch_norm(g, m, prefix, x):
    C = m.num_features
    dt = g.dtype
    w = g.param(child(prefix, "weight"), m.weight) if m.weight is not None else g.const(np.ones(C, dt), "ones")
    b = g.param(child(prefix, "bias"), m.bias) if m.bias is not None else g.const(np.zeros(C, dt), "zeros")
    if m.track_running_stats:
        mean = g.param(child(prefix, "running_mean"), m.running_mean)
        var = g.param(child(prefix, "running_var"), m.running_var)
        return g.node("BatchNormalization", [x.name, w, b, mean, var], hint="batch_norm", epsilon=float(m.eps))
    # Without running statistics the layer normalises with the batch's own (biased) statistics in eval too.
    axes = [0] + list(range(2, x.ndim))
    bshape = g.ints([C] + [1] * (x.ndim - 2))
    d = g.node("Sub", [x.name, g.reduce("ReduceMean", x.name, axes, hint="mean")])
    var = g.reduce("ReduceMean", g.node("Mul", [d, d]), axes, hint="var")
    inv = g.node("Sqrt", [g.node("Add", [var, g.scalar(m.eps, "eps")])])
    y = g.node("Mul", [g.node("Div", [d, inv]), g.node("Reshape", [w, bshape])])
    return g.node("Add", [y, g.node("Reshape", [b, bshape])], hint="batch_norm")


register(nn.BatchNorm1d)(_batch_norm)
register(nn.BatchNorm2d)(_batch_norm)


# --------------------------------------------------------------------------------------------- maxout
def _maxout_groups(g, x, dim: int, pieces: int) -> str:
    """The maximum over groups of `pieces` consecutive entries along `dim`: split that axis into
    (groups, pieces), then reduce the pieces."""
    nd = x.ndim
    dim %= nd
    shape = [0] * dim + [x.shape[dim] // pieces, pieces] + list(x.shape[dim + 1:])
    if dim == 0:
        shape[0] = -1  # the batch axis itself is split: its group count follows the batch size
    return g.reduce("ReduceMax", g.node("Reshape", [x.name, g.ints(shape)]), [dim + 1], keepdims=0, hint="maxout")


if hasattr(nn, "Maxout"):
    @register(nn.Maxout)
    def _maxout(g, m, prefix, x):
        y = g.call(m.linear, [x], child(prefix, "linear"))
        return _maxout_groups(g, y, -1, m.pieces)

if hasattr(nn, "ChannelMaxout"):
    @register(nn.ChannelMaxout)
    def _channel_maxout(g, m, prefix, x):
        return _maxout_groups(g, x, m.dim, m.pieces)


# --------------------------------------------------------------------------------------------- embedding
if hasattr(nn, "Embedding"):
    @register(nn.Embedding)
    def _embedding(g, m, prefix, ids):
        if ids.array.dtype.kind not in "iu":
            raise TypeError(f"{prefix or 'model'}: Embedding takes integer ids, got an example of dtype "
                            f"{ids.array.dtype}")
        return g.node("Gather", [g.param(child(prefix, "weight"), m.weight), ids.name], hint="embedding", axis=0)


# --------------------------------------------------------------------------------------------- layer norm
if hasattr(nn, "LayerNorm"):
    @register(nn.LayerNorm)
    def _layer_norm(g, m, prefix, x):
        shape, dt = tuple(m.normalized_shape), g.dtype
        w = g.param(child(prefix, "weight"), m.weight) if m.weight is not None else g.const(np.ones(shape, dt), "ones")
        b = g.param(child(prefix, "bias"), m.bias) if m.bias is not None else None
        axis = x.ndim - len(shape)
        if g.opset >= 17:  # LayerNormalization appeared in opset 17
            return g.node("LayerNormalization", [x.name, w] + ([b] if b else []), hint="layer_norm", axis=axis,
                          epsilon=float(m.eps))
        axes = list(range(axis, x.ndim))
        d = g.node("Sub", [x.name, g.reduce("ReduceMean", x.name, axes, hint="mean")])
        var = g.reduce("ReduceMean", g.node("Mul", [d, d]), axes, hint="var")
        y = g.node("Mul", [g.node("Div", [d, g.node("Sqrt", [g.node("Add", [var, g.scalar(m.eps, "eps")])])]), w])
        return g.node("Add", [y, b], hint="layer_norm") if b else y
