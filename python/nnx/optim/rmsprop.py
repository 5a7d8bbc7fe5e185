"""RMSprop, as torch.optim.RMSprop."""
from __future__ import annotations

from .._backend import _C
from .. import _capture
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

    @staticmethod
    def _values(group):
        return (float(group["lr"]), float(group["alpha"]), float(group["eps"]), float(group["weight_decay"]),
                float(group["momentum"]), float(bool(group["centered"])))

    @staticmethod
    def _names(group):
        return ("square_avg",) + (("momentum_buffer",) if group["momentum"] > 0 else ()) + \
            (("grad_avg",) if group["centered"] else ())

    def _prepare(self, group, params, grads):
        for p in params:
            st = self.state[p]
            if not st:
                st["step"] = 0
                st["square_avg"] = _zeros_like(p)
            if group["momentum"] > 0 and "momentum_buffer" not in st:
                st["momentum_buffer"] = _zeros_like(p)
            if group["centered"] and "grad_avg" not in st:
                st["grad_avg"] = _zeros_like(p)
            st["step"] = int(st["step"]) + 1
        st = [self.state[p] for p in params]
        sq = [s["square_avg"] for s in st]
        bufs = [s["momentum_buffer"] for s in st] if group["momentum"] > 0 else None
        avgs = [s["grad_avg"] for s in st] if group["centered"] else None
        datas = [p.data for p in params]
        return self._values(group), lambda h: _C.rmsprop_step_multi(datas, grads, sq, bufs, avgs, h)

    def _replay_hook(self, group, params, hyper):
        names = self._names(group)
        arrays = self._state_arrays(params, names)

        def hook():
            if self._names(group) != names:
                raise _capture.Stale("RMSprop momentum or centered was changed")
            if any(a is not b for a, b in zip(self._state_arrays(params, names), arrays)):
                raise _capture.Stale("RMSprop state arrays were replaced (load_state_dict?)")
            hyper[:] = self._values(group)

            def advance():
                for p in params:
                    self.state[p]["step"] = int(self.state[p]["step"]) + 1
            return advance
        return hook
