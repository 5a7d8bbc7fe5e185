"""Losses composed from differentiable Tensor operations (their gradients come from autograd):
nll_loss, l1_loss, smooth_l1_loss, huber_loss, kl_div, and label smoothing for cross_entropy. Each
follows torch.nn.functional's definition and argument names; nnx.functional re-exports them."""
from __future__ import annotations

import numpy as np

from .tensor import Tensor


def _t(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


_REDUCTIONS = ("none", "mean", "sum")


def _reduce(loss: Tensor, reduction: str, allowed=_REDUCTIONS) -> Tensor:
    if reduction not in allowed:
        raise ValueError(f"reduction: expected one of {allowed}, got {reduction!r}")
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def _pair(input, target, name="input"):
    x = _t(input)
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    t = target if isinstance(target, Tensor) else Tensor(np.asarray(target, dtype=x.dtype))
    if t.shape != x.shape:
        raise ValueError(f"target: expected the shape of {name} {x.shape}, got {t.shape}")
    if t.dtype != x.dtype:
        raise TypeError(f"target is {t.dtype} but {name} is {x.dtype}: nnx does not mix dtypes")
    return x, t


def nll_loss(input, target, weight=None, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities `input` (N, C) or (N, C, d1, ...) at the integer
    classes `target` (N,) or (N, d1, ...): loss_i = -weight[t_i] * input[i, t_i]. Targets equal to
    ignore_index count for nothing; "mean" divides by the sum of the weights of the counted targets (as
    torch). Pair it with log_softmax; cross_entropy fuses both."""
    x = _t(input)
    td = np.asarray(target.data if isinstance(target, Tensor) else target)
    if x.ndim < 2:
        raise ValueError(f"input: expected log-probabilities shaped (N, C) or (N, C, d1, ...), got shape {x.shape}")
    if td.dtype.kind not in "iu":
        raise TypeError(f"target: expected integer class indices, got dtype {td.dtype}")
    if x.ndim > 2:  # (N, C, d...) -> (N*d..., C), as torch treats the extra axes as more samples
        if td.shape != (x.shape[0],) + x.shape[2:]:
            raise ValueError(f"target: expected shape {(x.shape[0],) + x.shape[2:]} for input {x.shape}, "
                             f"got {td.shape}")
        x = x.permute(0, *range(2, x.ndim), 1).reshape(-1, x.shape[1])
        td = td.reshape(-1)
    n, c = x.shape
    if td.shape != (n,):
        raise ValueError(f"target: expected shape ({n},) for input {x.shape}, got {td.shape}")
    counted = td != ignore_index
    bad = counted & ((td < 0) | (td >= c))
    if bad.any():
        raise ValueError(f"target: class indices must be in [0, {c}) (or ignore_index={ignore_index}), got "
                         f"{td[bad][0]}")
    safe = np.where(counted, td, 0)
    w = np.ones(c, x.dtype) if weight is None else np.asarray(weight.data if isinstance(weight, Tensor) else weight,
                                                              dtype=x.dtype)
    if w.shape != (c,):
        raise ValueError(f"weight: expected one weight per class, shape ({c},), got {w.shape}")
    wi = np.where(counted, w[safe], 0).astype(x.dtype)
    loss = -(x[np.arange(n), safe] * wi)
    if reduction == "mean":
        return loss.sum() * (1.0 / wi.sum()) if wi.sum() else loss.sum() * np.asarray(np.nan, x.dtype)
    out = _reduce(loss, reduction)
    return out.reshape(np.asarray(target).shape) if reduction == "none" and np.ndim(target) > 1 else out


def cross_entropy_smoothed(logits, target, label_smoothing: float, reduction: str = "mean") -> Tensor:
    """Cross-entropy against (1 - eps) onehot(target) + eps / C: (1 - eps) CE + eps mean_c(-log softmax)."""
    from . import functional as F

    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing: expected a number in [0, 1], got {label_smoothing}")
    z = _t(logits)
    if z.ndim != 2:
        raise ValueError(f"logits: expected shape (N, C), got {z.shape}")
    ce = F.cross_entropy(z, target, reduction=reduction)
    uniform = -F.log_softmax(z, dim=1).mean(axis=1)
    return ce * (1.0 - eps) + _reduce(uniform, reduction, ("mean", "sum")) * eps


def l1_loss(input, target, reduction: str = "mean") -> Tensor:
    """|input - target|, averaged or summed (subgradient 0 where they are equal)."""
    x, t = _pair(input, target)
    return _reduce((x - t).abs(), reduction)


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """0.5 d^2 where |d| <= delta, else delta (|d| - delta / 2), d = input - target."""
    if not delta > 0:
        raise ValueError(f"delta: expected a number > 0, got {delta}")
    x, t = _pair(input, target)
    a = (x - t).abs()
    q = a.clamp(max=delta)  # the quadratic part; the rest of |d| is linear
    return _reduce(q * q * 0.5 + (a - q) * delta, reduction)


def smooth_l1_loss(input, target, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - beta / 2 (huber_loss / beta; l1_loss for beta = 0)."""
    if beta < 0:
        raise ValueError(f"beta: expected a number >= 0, got {beta}")
    if beta == 0:
        return l1_loss(input, target, reduction)
    x, t = _pair(input, target)
    a = (x - t).abs()
    q = a.clamp(max=beta)
    return _reduce(q * q * (0.5 / beta) + (a - q), reduction)


def kl_div(input, target, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """Kullback-Leibler divergence with `input` holding log-probabilities: target (log target - input)
    element-wise (0 where target is 0), or exp(target) (target - input) with log_target. "batchmean"
    divides the sum by the batch size (the true KL per sample); "mean" by the number of elements."""
    x, t = _pair(input, target)
    if reduction not in ("none", "mean", "sum", "batchmean"):
        raise ValueError(f"reduction: expected 'none', 'mean', 'sum' or 'batchmean', got {reduction!r}")
    if log_target:
        loss = t.exp() * (t - x)
    else:
        loss = t * _log_where_positive(t) - t * x  # target log target taken as 0 at target = 0 (xlogy)
    if reduction == "batchmean":
        return loss.sum() * (1.0 / max(x.shape[0] if x.ndim else 1, 1))
    return _reduce(loss, reduction)


def _log_where_positive(t: Tensor) -> Tensor:
    td = t.data
    pos = td > 0
    out = np.where(pos, np.log(np.where(pos, td, 1)), 0).astype(td.dtype)
    return Tensor._make(out, (t,), lambda g: (np.where(pos, g / np.where(pos, td, 1), 0).astype(td.dtype),), "log")


def l1_penalty(parameters, weight: float = 1.0) -> Tensor:
    """weight * sum |w| over `parameters` (an iterable of tensors, e.g. model.parameters()): add it to the
    loss for L1 regularisation. Its gradient is weight * sign(w), 0 at w = 0 (the subgradient that keeps
    exact zeros at zero)."""
    return elastic_net_penalty(parameters, l1=weight, l2=0.0)


def elastic_net_penalty(parameters, l1: float = 1.0, l2: float = 1.0) -> Tensor:
    """sum over `parameters` of l1 |w| + l2 w^2 (elastic net; l2 alone is the L2 penalty, whose gradient
    2 l2 w is what weight_decay = 2 l2 adds inside an optimizer)."""
    ps = [p if isinstance(p, Tensor) else Tensor(p) for p in parameters]
    if not ps:
        raise ValueError("parameters: expected at least one tensor, got none")
    for name, v in (("l1", l1), ("l2", l2)):
        if not float(v) >= 0:
            raise ValueError(f"{name}: expected a number >= 0, got {v}")
    total = None
    for p in ps:
        term = None
        if l1:
            term = p.abs().sum() * float(l1)
        if l2:
            sq = (p * p).sum() * float(l2)
            term = sq if term is None else term + sq
        if term is None:
            term = (p * 0).sum()
        total = term if total is None else total + term
    return total


def sparsity_penalty(activations, target: float = 0.05, kind: str = "kl") -> Tensor:
    """Activity penalty that keeps hidden units mostly off (the sparse autoencoder). activations (N, H)
    in (0, 1) (sigmoid units) for kind "kl": sum_j KL(target || rho_j) with rho_j the unit's mean
    activation over the batch, = sum_j target log(target / rho_j) + (1 - target) log((1 - target) /
    (1 - rho_j)); for kind "l1": sum_j mean_n |a_nj| (any activation)."""
    a = _t(activations)
    if a.ndim != 2:
        raise ValueError(f"activations: expected a 2-D (batch, units) tensor, got shape {a.shape}")
    if kind == "l1":
        return a.abs().mean(dim=0).sum()
    if kind != "kl":
        raise ValueError(f"kind: expected 'kl' or 'l1', got {kind!r}")
    if not 0.0 < target < 1.0:
        raise ValueError(f"target: expected a mean activation in (0, 1), got {target}")
    rho = a.mean(dim=0)
    t = float(target)
    return (t * (np.log(t) - rho.log()) + (1 - t) * (np.log(1 - t) - (1 - rho).log())).sum()
