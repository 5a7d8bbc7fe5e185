"""Stochastic gradient descent with momentum, as torch.optim.SGD."""
from __future__ import annotations

from .._backend import _C
from .. import _capture
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

    @staticmethod
    def _values(group, first):
        return (float(group["lr"]), float(group["momentum"]), float(group["dampening"]),
                float(group["weight_decay"]), float(bool(group["nesterov"])), float(first))

    def _step_params(self, gi, key, group, params):
        # Parameters whose momentum buffer is not made yet (their first step) take a call of their own.
        if group["momentum"] != 0:
            fresh = [p for p in params if self.state.get(p, {}).get("momentum_buffer") is None]
            if fresh and len(fresh) != len(params):
                rest = [p for p in params if self.state.get(p, {}).get("momentum_buffer") is not None]
                super()._step_params(gi, 2 * key, group, fresh)
                super()._step_params(gi, 2 * key + 1, group, rest)
                return
        super()._step_params(gi, key, group, params)

    def _prepare(self, group, params, grads):
        first = False
        bufs = None
        if group["momentum"] != 0:
            bufs = []
            for p in params:
                st = self.state[p]
                b = st.get("momentum_buffer")
                if b is None:
                    first = True
                    b = st["momentum_buffer"] = _zeros_like(p)
                bufs.append(b)
        datas = [p.data for p in params]
        return self._values(group, first), lambda h: _C.sgd_step_multi(datas, grads, bufs, h)

    def _replay_hook(self, group, params, hyper):
        with_momentum = group["momentum"] != 0
        bufs = self._state_arrays(params, ("momentum_buffer",)) if with_momentum else None

        def hook():
            if (group["momentum"] != 0) != with_momentum:
                raise _capture.Stale("SGD momentum was switched on or off")
            if bufs is not None and any(self.state.get(p, {}).get("momentum_buffer") is not b
                                        for p, b in zip(params, bufs)):
                raise _capture.Stale("SGD momentum buffers were replaced (load_state_dict?)")
            hyper[:] = self._values(group, False)
            return None
        return hook
