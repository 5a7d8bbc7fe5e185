"""Adagrad and Adadelta, as torch.optim.Adagrad / torch.optim.Adadelta."""
from __future__ import annotations

import numpy as np

from .._backend import _C
from .optimizer import Optimizer, _zeros_like


class Adagrad(Optimizer):
    r"""Adagrad(params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10)

    For each parameter p with gradient g, at step t = 1, 2, ... (s starts at initial_accumulator_value):

        g   <- g + weight_decay * p
        clr  = lr / (1 + (t - 1) * lr_decay)
        s   <- s + g^2
        p   <- p - clr * g / (sqrt(s) + eps)
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10):
        for name, v in (("lr_decay", lr_decay), ("initial_accumulator_value", initial_accumulator_value)):
            if not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"{name}: expected a number >= 0, got {v!r}")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps))

    def _update(self, p, grad, group, state):
        if not state:
            state["step"] = 0
            state["sum"] = np.full(p.shape, group["initial_accumulator_value"], dtype=p.dtype)
        state["step"] = step = int(state["step"]) + 1
        clr = group["lr"] / (1 + (step - 1) * group["lr_decay"])
        _C.adagrad_step(p.data, grad, state["sum"], float(group["lr"]), float(group["eps"]),
                        float(group["weight_decay"]), float(clr))


class Adadelta(Optimizer):
    r"""Adadelta(params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0)

    For each parameter p with gradient g (s and u start at zero):

        g   <- g + weight_decay * p
        s   <- rho * s + (1 - rho) * g^2
        d    = sqrt(u + eps) / sqrt(s + eps) * g
        u   <- rho * u + (1 - rho) * d^2
        p   <- p - lr * d
    """

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0.0):
        if not isinstance(rho, (int, float)) or not 0.0 <= rho <= 1.0:
            raise ValueError(f"rho: expected a number in [0, 1], got {rho!r}")
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay))

    def _update(self, p, grad, group, state):
        if not state:
            state["step"] = 0
            state["square_avg"] = _zeros_like(p)
            state["acc_delta"] = _zeros_like(p)
        state["step"] = int(state["step"]) + 1
        _C.adadelta_step(p.data, grad, state["square_avg"], state["acc_delta"], float(group["lr"]),
                         float(group["rho"]), float(group["eps"]), float(group["weight_decay"]))
