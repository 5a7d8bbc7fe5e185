"""Training utilities with PyTorch's names (torch.nn.utils)."""
from __future__ import annotations

import math

import numpy as np

from ..tensor import Tensor

__all__ = ["clip_grad_norm_"]


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
