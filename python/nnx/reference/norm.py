"""Batch norm and layer norm in plain NumPy: the oracle for nnx.ops.norm (same names and signatures).

Batch norm, per channel c of x (N, C, *spatial), over its n = N * prod(spatial) values:
    training:   mean = sum(x) / n, var = sum((x - mean)^2) / n (biased); the running statistics move by
                momentum: r_mean <- (1 - m) r_mean + m mean, r_var <- (1 - m) r_var + m var n / (n - 1)
    evaluation: mean = r_mean, var = r_var
    xhat = (x - mean) / sqrt(var + eps),  y = xhat * weight + bias  (then relu for activation="relu")
Backward, g = dy (times 1[y > 0] after a fused relu), per channel:
    dbias = sum(g), dweight = sum(g * xhat)
    training:   dx = weight / sqrt(var + eps) * (g - dbias / n - xhat * dweight / n)
                (the mean and the variance depend on every x, hence the two correction terms)
    evaluation: dx = weight / sqrt(var + eps) * g
Layer norm is the same normalisation over the trailing `normalized_shape` axes of each leading index,
with weight and bias shaped like normalized_shape; always with the statistics of x itself.
"""
from __future__ import annotations

import numpy as np

__all__ = ["batch_norm", "batch_norm_backward", "layer_norm", "layer_norm_backward"]


def _channel_axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _per_channel(v, x):
    """A (C,) vector shaped to broadcast against x (N, C, *spatial)."""
    return np.asarray(v).reshape((1, -1) + (1,) * (x.ndim - 2))


def batch_norm(x, weight=None, bias=None, running_mean=None, running_var=None, training=True, momentum=0.1,
               eps=1e-5, *, activation=None, return_stats=False):
    x = np.asarray(x)
    dt = x.dtype
    if training:
        axes = _channel_axes(x)
        n = x.size // max(x.shape[1], 1)
        mean = x.mean(axis=axes)
        var = ((x - _per_channel(mean, x)) ** 2).mean(axis=axes)
        if running_mean is not None:
            running_mean[...] = (1 - momentum) * running_mean + momentum * mean
        if running_var is not None:
            running_var[...] = (1 - momentum) * running_var + momentum * var * (n / (n - 1))
    else:
        mean, var = np.asarray(running_mean), np.asarray(running_var)
    invstd = (1 / np.sqrt(var.astype(np.float64) + eps)).astype(dt)
    mean = mean.astype(dt)
    y = (x - _per_channel(mean, x)) * _per_channel(invstd, x)
    if weight is not None:
        y = y * _per_channel(weight, x)
    if bias is not None:
        y = y + _per_channel(bias, x)
    if activation == "relu":
        y = np.maximum(y, 0)
    y = np.ascontiguousarray(y, dtype=dt)
    return (y, mean, invstd) if return_stats else y


def batch_norm_backward(dy, x, weight=None, bias=None, running_mean=None, running_var=None, training=True,
                        momentum=0.1, eps=1e-5, *, activation=None, y=None, mean=None, invstd=None, needs=None):
    x, dy = np.asarray(x), np.asarray(dy)
    dt = x.dtype
    if mean is None:
        if training:
            _, mean, invstd = batch_norm(x, None, None, None, None, True, 0.0, eps, return_stats=True)
        else:
            mean = np.asarray(running_mean, dtype=dt)
            invstd = (1 / np.sqrt(np.asarray(running_var, dtype=np.float64) + eps)).astype(dt)
    g = dy * (np.asarray(y) > 0) if activation == "relu" else dy
    axes = _channel_axes(x)
    n = x.size // max(x.shape[1], 1)
    xhat = (x - _per_channel(mean, x)) * _per_channel(invstd, x)
    dbias = g.sum(axis=axes)
    dweight = (g * xhat).sum(axis=axes)
    w = np.ones(x.shape[1], dt) if weight is None else np.asarray(weight)
    scale = _per_channel(w * invstd, x)
    if training:
        dx = scale * (g - _per_channel(dbias, x) / n - xhat * _per_channel(dweight, x) / n)
    else:
        dx = scale * g
    nx, nw, nb = (True, True, True) if needs is None else needs
    return (np.ascontiguousarray(dx, dtype=dt) if nx else None,
            dweight.astype(dt) if nw and weight is not None else None,
            dbias.astype(dt) if nb and bias is not None else None)


def _ln_axes(x, normalized_shape):
    k = 1 if np.ndim(normalized_shape) == 0 else len(normalized_shape)
    return tuple(range(x.ndim - k, x.ndim))


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5, *, return_stats=False):
    x = np.asarray(x)
    dt = x.dtype
    axes = _ln_axes(x, normalized_shape)
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    invstd = (1 / np.sqrt(var.astype(np.float64) + eps)).astype(dt)
    y = (x - mean) * invstd
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    y = np.ascontiguousarray(y, dtype=dt)
    lead = x.shape[:x.ndim - len(axes)]
    return (y, mean.reshape(lead).astype(dt), invstd.reshape(lead)) if return_stats else y


def layer_norm_backward(dy, x, normalized_shape, weight=None, bias=None, eps=1e-5, *, mean=None, invstd=None,
                        needs=None):
    x, dy = np.asarray(x), np.asarray(dy)
    dt = x.dtype
    axes = _ln_axes(x, normalized_shape)
    if mean is None:
        _, mean, invstd = layer_norm(x, normalized_shape, None, None, eps, return_stats=True)
    keep = x.shape[:x.ndim - len(axes)] + (1,) * len(axes)
    mean, invstd = np.reshape(mean, keep), np.reshape(invstd, keep)
    d = int(np.prod([x.shape[a] for a in axes]))
    xhat = (x - mean) * invstd
    g = dy * weight if weight is not None else dy
    dx = invstd * (g - g.sum(axis=axes, keepdims=True) / d - xhat * (g * xhat).sum(axis=axes, keepdims=True) / d)
    lead_axes = tuple(range(x.ndim - len(axes)))
    nx, nw, nb = (True, True, True) if needs is None else needs
    return (np.ascontiguousarray(dx, dtype=dt) if nx else None,
            (dy * xhat).sum(axis=lead_axes).astype(dt) if nw and weight is not None else None,
            dy.sum(axis=lead_axes).astype(dt) if nb and bias is not None else None)
