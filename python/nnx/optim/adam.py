"""Adam and AdamW, as torch.optim.Adam / torch.optim.AdamW."""
from __future__ import annotations

import math

from .._backend import _C
from .optimizer import Optimizer, _zeros_like


class Adam(Optimizer):
    r"""Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False)

    For each parameter p with gradient g, at step t = 1, 2, ...:

        g  <- g + weight_decay * p                (AdamW instead: p <- p * (1 - lr * weight_decay))
        m  <- beta1 * m + (1 - beta1) * g
        v  <- beta2 * v + (1 - beta2) * g^2
        v' <- max(v_max, v) (amsgrad, kept as v_max)  else  v
        p  <- p - lr / (1 - beta1^t) * m / (sqrt(v') / sqrt(1 - beta2^t) + eps)
    """

    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False):
        betas = tuple(float(b) for b in betas)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas: expected two numbers in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad))

    def _update(self, p, grad, group, state):
        if not state:
            state["step"] = 0
            state["exp_avg"] = _zeros_like(p)
            state["exp_avg_sq"] = _zeros_like(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = _zeros_like(p)
        if group["amsgrad"] and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = _zeros_like(p)
        state["step"] = step = int(state["step"]) + 1
        beta1, beta2 = group["betas"]
        _C.adam_step(p.data, grad, state["exp_avg"], state["exp_avg_sq"],
                     state.get("max_exp_avg_sq") if group["amsgrad"] else None,
                     float(group["lr"]), float(beta1), float(beta2), float(group["eps"]),
                     float(group["weight_decay"]), self._decoupled, bool(group["amsgrad"]),
                     1.0 - beta1 ** step, math.sqrt(1.0 - beta2 ** step))


class AdamW(Adam):
    r"""AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False)

    Adam with decoupled weight decay (Loshchilov & Hutter): at each step, before the Adam update,

        p <- p * (1 - lr * weight_decay)

    and the gradient is not modified; the rest is Adam's update (see Adam).
    """

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
