"""Training and inference utilities with PyTorch's names (torch.nn.utils)."""
from __future__ import annotations

import copy
import math

import numpy as np

from ..tensor import Tensor
from .containers import Sequential
from .layers import BatchNorm2d, Conv2d
from .module import Module, Parameter

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


def fuse_conv_bn(model: Module, inplace: bool = False) -> Module:
    """The model in evaluation mode with every Conv2d directly followed by a BatchNorm2d inside a Sequential (at any
    depth) replaced by their fuse_conv_bn_eval, the BatchNorm2d removed, so a ReLU after it fuses into the
    convolution too; the layers after it in that Sequential move up an index (their state_dict keys with them). A
    copy unless inplace=True. A Conv2d and BatchNorm2d that a custom forward calls one after the other are not
    found: fold them with fuse_conv_bn_eval and put nnx.nn.Identity() in the BatchNorm's place."""
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
    return model
