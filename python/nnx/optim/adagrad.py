"""Adagrad and Adadelta, as torch.optim.Adagrad / torch.optim.Adadelta."""
from __future__ import annotations

import numpy as np

from .. import _capture
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

    @staticmethod
    def _values(group, step):
        clr = group["lr"] / (1 + (step - 1) * group["lr_decay"])
        return float(group["lr"]), float(group["eps"]), float(group["weight_decay"]), float(clr)

    def _step_params(self, gi, key, group, params):
        # The decayed learning rate depends on the step count: parameters at different counts take separate calls.
        _split_by_step(self, super()._step_params, gi, key, group, params)

    def _prepare(self, group, params, grads):
        for p in params:
            st = self.state[p]
            if not st:
                st["step"] = 0
                st["sum"] = np.full(p.shape, group["initial_accumulator_value"], dtype=p.dtype)
            st["step"] = step = int(st["step"]) + 1
        sums = [self.state[p]["sum"] for p in params]
        datas = [p.data for p in params]
        return self._values(group, step), lambda h: _C.adagrad_step_multi(datas, grads, sums, h)

    def _replay_hook(self, group, params, hyper):
        return _counting_hook(self, group, params, hyper, ("sum",), lambda step: self._values(group, step))


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

    @staticmethod
    def _values(group):
        return float(group["lr"]), float(group["rho"]), float(group["eps"]), float(group["weight_decay"])

    def _prepare(self, group, params, grads):
        for p in params:
            st = self.state[p]
            if not st:
                st["step"] = 0
                st["square_avg"] = _zeros_like(p)
                st["acc_delta"] = _zeros_like(p)
            st["step"] = int(st["step"]) + 1
        sq = [self.state[p]["square_avg"] for p in params]
        acc = [self.state[p]["acc_delta"] for p in params]
        datas = [p.data for p in params]
        return self._values(group), lambda h: _C.adadelta_step_multi(datas, grads, sq, acc, h)

    def _replay_hook(self, group, params, hyper):
        return _counting_hook(self, group, params, hyper, ("square_avg", "acc_delta"), lambda step: self._values(group),
                              same_step=False)


def _split_by_step(opt, step_params, gi, key, group, params):
    steps = {int(opt.state.get(p, {}).get("step", 0)) for p in params}
    if len(steps) > 1:
        for k, s in enumerate(sorted(steps)):
            step_params(gi, key * 1000 + k, group, [p for p in params if int(opt.state.get(p, {}).get("step", 0)) == s])
        return
    step_params(gi, key, group, params)


def _counting_hook(opt, group, params, hyper, names, values, same_step=True):
    """The replay hook of an optimizer whose state is `names` per parameter plus a step count: checks the state
    arrays are still the plan's, writes values(next step) into `hyper` (same_step: the values depend on a step
    count that all of the call's parameters share), and advances the counts after the replay."""
    arrays = opt._state_arrays(params, names)

    def hook():
        if any(a is not b for a, b in zip(opt._state_arrays(params, names), arrays)):
            raise _capture.Stale(f"{type(opt).__name__} state arrays were replaced (load_state_dict?)")
        steps = [int(opt.state[p]["step"]) for p in params]
        if same_step and len(set(steps)) != 1:
            raise _capture.Stale(f"{type(opt).__name__} step counts of one call diverged")
        hyper[:] = values(steps[0] + 1)

        def advance():
            for p in params:
                opt.state[p]["step"] = int(opt.state[p]["step"]) + 1
        return advance
    return hook
