"""RMSprop, as torch.optim.RMSprop."""
from __future__ import annotations

from .._backend import _C
from .optimizer import Optimizer, _zeros_like


class RMSprop(Optimizer):
    r"""RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False)

    For each parameter p with gradient g (s, a, b start at zero):

        g   <- g + weight_decay * p
        s   <- alpha * s + (1 - alpha) * g^2
        if centered:  a <- alpha * a + (1 - alpha) * g;   d = sqrt(s - a^2) + eps
        else:                                             d = sqrt(s) + eps
        if momentum > 0:  b <- momentum * b + g / d;  p <- p - lr * b
        else:             p <- p - lr * g / d
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha: expected a smoothing constant in [0, 1], got {alpha}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered))

    def _update(self, p, grad, group, state):
        if not state:
            state["step"] = 0
            state["square_avg"] = _zeros_like(p)
        if group["momentum"] > 0 and "momentum_buffer" not in state:
            state["momentum_buffer"] = _zeros_like(p)
        if group["centered"] and "grad_avg" not in state:
            state["grad_avg"] = _zeros_like(p)
        state["step"] = int(state["step"]) + 1
        _C.rmsprop_step(p.data, grad, state["square_avg"],
                        state["momentum_buffer"] if group["momentum"] > 0 else None,
                        state["grad_avg"] if group["centered"] else None,
                        float(group["lr"]), float(group["alpha"]), float(group["eps"]),
                        float(group["weight_decay"]), float(group["momentum"]), bool(group["centered"]))
