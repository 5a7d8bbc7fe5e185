"""Stochastic gradient descent with momentum, as torch.optim.SGD."""
from __future__ import annotations

from .._backend import _C
from .optimizer import Optimizer, _zeros_like


class SGD(Optimizer):
    r"""SGD(params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False)

    For each parameter p with gradient g, at step t:

        g   <- g + weight_decay * p
        if momentum != 0:
            b <- g                                          (t = 1)
            b <- momentum * b + (1 - dampening) * g         (t > 1)
            g <- g + momentum * b    if nesterov else    b
        p   <- p - lr * g
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov: Nesterov momentum needs momentum > 0 and dampening = 0, got "
                             f"momentum={momentum}, dampening={dampening}")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov))

    def _update(self, p, grad, group, state):
        momentum = group["momentum"]
        buf = state.get("momentum_buffer")
        first = buf is None
        if momentum != 0 and first:
            buf = state["momentum_buffer"] = _zeros_like(p)
        _C.sgd_step(p.data, grad, buf if momentum != 0 else None, float(group["lr"]), float(momentum),
                    float(group["dampening"]), float(group["weight_decay"]), bool(group["nesterov"]), first)
