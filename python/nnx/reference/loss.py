"""Losses in plain NumPy: the oracle for nnx.ops.loss.

Each loss returns a 0-d array of the input's dtype: the sum of the per-example losses for
reduction="sum", their mean for reduction="mean" (over the batch for the class-index losses, over all
elements for mse_loss and binary_cross_entropy_with_logits, as PyTorch). An empty batch gives 0 for "sum"
and NaN for "mean" (0 / 0, as PyTorch). `<loss>_backward(dy, ...)` is the gradient w.r.t. the first
argument for the scalar upstream gradient dy.
"""
from __future__ import annotations

import numpy as np

from .activation import log_softmax, sigmoid, softmax

__all__ = [
    "cross_entropy", "cross_entropy_backward", "mse_loss", "mse_loss_backward",
    "binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_backward",
    "multiclass_hinge_loss", "multiclass_hinge_loss_backward",
    "sum", "sum_backward", "mean", "mean_backward",
]


def _check_reduction(reduction):
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction: expected 'mean' or 'sum', got {reduction!r}")


def _reduce(losses, count, reduction, dtype):
    _check_reduction(reduction)
    total = np.sum(losses, dtype=dtype)
    if reduction == "sum":
        return np.asarray(total, dtype=dtype)
    if count == 0:
        return np.asarray(np.nan, dtype=dtype)  # mean of nothing, as PyTorch
    return np.asarray(total / count, dtype=dtype)


def _scale(dy, count, reduction):
    """d(reduced)/d(loss_i): 1 for "sum", 1/count for "mean", times the upstream dy."""
    _check_reduction(reduction)
    g = float(np.asarray(dy))
    return g / count if reduction == "mean" and count else g


def cross_entropy(logits, target, reduction="mean"):
    """loss_i = -log softmax(logits_i)[target_i], the log-softmax computed stably (max subtracted)."""
    n = logits.shape[0]
    logp = log_softmax(logits, axis=1)
    losses = -logp[np.arange(n), target]
    return _reduce(losses, n, reduction, logits.dtype)


def cross_entropy_backward(dy, logits, target, reduction="mean"):
    """d loss_i / d logits_ij = softmax(logits_i)_j - [j == target_i]."""
    n = logits.shape[0]
    onehot = np.zeros_like(logits)
    onehot[np.arange(n), target] = 1
    return ((softmax(logits, axis=1) - onehot) * _scale(dy, n, reduction)).astype(logits.dtype)


def mse_loss(pred, target, reduction="mean"):
    """loss = (pred - target)^2 per element."""
    return _reduce((pred - target) ** 2, pred.size, reduction, pred.dtype)


def mse_loss_backward(dy, pred, target, reduction="mean"):
    """d (p - t)^2 / dp = 2 (p - t)."""
    return (2 * (pred - target) * _scale(dy, pred.size, reduction)).astype(pred.dtype)


def binary_cross_entropy_with_logits(z, target, reduction="mean"):
    """loss = -[t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))] = max(z, 0) - z t + log(1 + e^-|z|),
    the second form never taking exp of a positive number nor log of 0."""
    losses = np.maximum(z, 0) - z * target + np.log1p(np.exp(-np.abs(z)))
    return _reduce(losses, z.size, reduction, z.dtype)


def binary_cross_entropy_with_logits_backward(dy, z, target, reduction="mean"):
    """d loss / dz = sigmoid(z) - t."""
    return ((sigmoid(z) - target) * _scale(dy, z.size, reduction)).astype(z.dtype)


def multiclass_hinge_loss(scores, target, margin=1.0, reduction="mean"):
    """loss_i = sum over j != target_i of max(0, s_ij - s_i,target_i + margin)."""
    n = scores.shape[0]
    rows = np.arange(n)
    margins = scores - scores[rows, target][:, None] + margin
    hinge = np.maximum(0, margins)
    hinge[rows, target] = 0  # the true class is not a wrong class
    return _reduce(hinge.sum(axis=1), n, reduction, scores.dtype)


def multiclass_hinge_loss_backward(dy, scores, target, margin=1.0, reduction="mean"):
    """Each active wrong class j (margin > 0) adds +1 to ds_ij and -1 to ds_i,target_i."""
    n = scores.shape[0]
    rows = np.arange(n)
    margins = scores - scores[rows, target][:, None] + margin
    active = (margins > 0).astype(scores.dtype)
    active[rows, target] = 0
    grad = active.copy()
    grad[rows, target] = -active.sum(axis=1)
    return (grad * _scale(dy, n, reduction)).astype(scores.dtype)


def sum(x):  # noqa: A001 - PyTorch's name; this module never calls the builtin
    """The sum of all elements, in float64, returned in x's dtype."""
    return np.asarray(np.sum(x, dtype=np.float64), dtype=x.dtype)


def sum_backward(dy, x):
    """d(sum)/dx_i = 1 for every element, times the upstream dy."""
    return np.full(x.shape, float(np.asarray(dy)), dtype=x.dtype)


def mean(x):
    """The sum over the number of elements (NaN for an empty x: 0 / 0)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.sum(x, dtype=np.float64) / np.float64(x.size), dtype=x.dtype)


def mean_backward(dy, x):
    """d(mean)/dx_i = 1 / n for every element, times the upstream dy."""
    return np.full(x.shape, float(np.asarray(dy)) / x.size if x.size else 0.0, dtype=x.dtype)
