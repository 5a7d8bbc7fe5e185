"""Losses on the C++ kernels (cpp/loss). Same names and signatures as nnx.reference.loss.

Each loss returns a 0-d array of the input's dtype; reduction="sum" adds the per-example losses,
"mean" divides by the batch size (cross_entropy, multiclass_hinge_loss) or by the number of elements
(mse_loss, binary_cross_entropy_with_logits). An empty batch gives 0 for "sum" and NaN for "mean" (as
PyTorch). Sums are taken in double in fixed-size chunks combined in order: bitwise identical results for
any thread count. `<loss>_backward(dy, ...)` takes the scalar upstream gradient dy.
"""
from __future__ import annotations

import numbers

import numpy as np

from .._backend import _C
from .._args import check_ndim, check_reduction, check_same_shape, class_targets, empty, float_array, same_dtype
from ._checks import contiguous

__all__ = [
    "cross_entropy", "cross_entropy_backward", "mse_loss", "mse_loss_backward",
    "binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_backward",
    "multiclass_hinge_loss", "multiclass_hinge_loss_backward",
    "sum", "sum_backward", "mean", "mean_backward",
]


def _scalar_dy(dy) -> float:
    try:
        arr = np.asarray(dy)
    except Exception:  # noqa: BLE001
        arr = None
    if arr is None or arr.dtype.kind not in "fiu":
        raise TypeError(f"dy: expected a real scalar upstream gradient, got {type(dy).__name__}")
    if arr.size != 1:
        raise ValueError(f"dy: expected a scalar upstream gradient (one element), got shape {arr.shape}")
    return float(arr.reshape(()))


def _reduce(fn, *args, count: int, reduction: str, dtype) -> np.ndarray:
    """The 0-d loss: the kernel writes (dtype)(sum / count) ("mean") or (dtype)(sum) into it, so the value
    never passes through Python and a captured step (nnx.compile) can replay it. An empty batch's mean is
    0 / 0 = NaN."""
    out = np.empty((), dtype=dtype)
    fn(*args, out, float(count) if reduction == "mean" else 1.0)
    return out


def _scale(dy, count: int, reduction: str) -> float:
    g = _scalar_dy(dy)
    return g / count if reduction == "mean" and count else g


def _class_inputs(x, target, name: str):
    x = float_array(x, name)
    check_ndim(x, name, 2, "batch x classes")
    t = class_targets(target, x.shape[0], x.shape[1], "target")
    return contiguous(x, name), t


def _pair_inputs(x, target, name: str):
    x = float_array(x, name)
    target = float_array(target, "target")
    same_dtype(**{name: x, "target": target})
    check_same_shape(x, name, target, "target")
    # Flat C-contiguous views: the element-wise kernels need no shape, and any ndim works.
    return contiguous(x, name).reshape(-1), contiguous(target, "target").reshape(-1), x.shape


def _real(v, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(v).__name__} {v!r}")
    return float(v)


def cross_entropy(logits, target, reduction="mean"):
    """-log softmax(logits)[i, target[i]], log-softmax fused; logits (N, C), target int (N,) in [0, C)."""
    check_reduction(reduction)
    z, t = _class_inputs(logits, target, "logits")
    return _reduce(_C.cross_entropy_sum, z, t, count=z.shape[0], reduction=reduction, dtype=z.dtype)


def cross_entropy_backward(dy, logits, target, reduction="mean"):
    """d/d logits: (softmax(logits) - onehot(target)) * dy (/ N for "mean")."""
    check_reduction(reduction)
    z, t = _class_inputs(logits, target, "logits")
    out = empty(z.shape, z.dtype, "dlogits")
    _C.cross_entropy_backward(z, t, _scale(dy, z.shape[0], reduction), out)
    return out


def mse_loss(pred, target, reduction="mean"):
    """(pred - target)^2, summed or averaged over all elements."""
    check_reduction(reduction)
    p, t, _ = _pair_inputs(pred, target, "pred")
    return _reduce(_C.mse_sum, p, t, count=p.size, reduction=reduction, dtype=p.dtype)


def mse_loss_backward(dy, pred, target, reduction="mean"):
    check_reduction(reduction)
    p, t, shape = _pair_inputs(pred, target, "pred")
    out = empty(p.shape, p.dtype, "dpred")
    _C.mse_backward(p, t, _scale(dy, p.size, reduction), out)
    return out.reshape(shape)


def binary_cross_entropy_with_logits(z, target, reduction="mean"):
    """max(z, 0) - z * target + log1p(exp(-|z|)): binary cross-entropy of sigmoid(z), stable for any |z|."""
    check_reduction(reduction)
    z, t, _ = _pair_inputs(z, target, "z")
    return _reduce(_C.bce_with_logits_sum, z, t, count=z.size, reduction=reduction, dtype=z.dtype)


def binary_cross_entropy_with_logits_backward(dy, z, target, reduction="mean"):
    check_reduction(reduction)
    z, t, shape = _pair_inputs(z, target, "z")
    out = empty(z.shape, z.dtype, "dz")
    _C.bce_with_logits_backward(z, t, _scale(dy, z.size, reduction), out)
    return out.reshape(shape)


def multiclass_hinge_loss(scores, target, margin=1.0, reduction="mean"):
    """sum over wrong classes j of max(0, s_j - s_target + margin); scores (N, C), target int (N,)."""
    check_reduction(reduction)
    s, t = _class_inputs(scores, target, "scores")
    return _reduce(_C.multiclass_hinge_sum, s, t, _real(margin, "margin"), count=s.shape[0], reduction=reduction,
                   dtype=s.dtype)


def multiclass_hinge_loss_backward(dy, scores, target, margin=1.0, reduction="mean"):
    check_reduction(reduction)
    s, t = _class_inputs(scores, target, "scores")
    out = empty(s.shape, s.dtype, "dscores")
    _C.multiclass_hinge_backward(s, t, _real(margin, "margin"), _scale(dy, s.shape[0], reduction), out)
    return out


# ---- the sum and mean of all of a tensor's elements (Tensor.sum / mean): the loss family's chunked double sum of
# the elements themselves. NumPy's float32 sum of 1 MiB took 40 us where this takes 12.6 (torch.sum 12.5; Xeon, 1
# thread), and NumPy's runs on one thread only.

def _sum_over(x, count: bool) -> np.ndarray:
    """The 0-d (x's dtype) sum of x's elements, divided by their number where count (an empty x: 0 / 0 = NaN)."""
    x = contiguous(float_array(x, "x"), "x")
    out = np.empty((), dtype=x.dtype)
    _C.sum_elements(x, out, float(x.size) if count else 1.0)
    return out


def sum(x):  # noqa: A001 - PyTorch's name; this module never calls the builtin
    """The sum of all of x's elements, a 0-d array of x's dtype (summed in double)."""
    return _sum_over(x, False)


def sum_backward(dy, x):
    """dy (a scalar) in every element of x's shape."""
    x = float_array(x, "x")
    return np.full(x.shape, _scalar_dy(dy), dtype=x.dtype)


def mean(x):
    """The mean of all of x's elements, a 0-d array of x's dtype (NaN for an empty x, as NumPy and PyTorch)."""
    return _sum_over(x, True)


def mean_backward(dy, x):
    """dy / x.size in every element of x's shape."""
    x = float_array(x, "x")
    g = _scalar_dy(dy)
    return np.full(x.shape, g / x.size if x.size else 0.0, dtype=x.dtype)
