"""Adam and AdamW, as torch.optim.Adam / torch.optim.AdamW."""
from __future__ import annotations

import math

from .._backend import _C
from .. import _capture
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

    def _values(self, group, step):
        beta1, beta2 = group["betas"]
        return (float(group["lr"]), float(beta1), float(beta2), float(group["eps"]), float(group["weight_decay"]),
                float(self._decoupled), float(bool(group["amsgrad"])), 1.0 - beta1 ** step,
                math.sqrt(1.0 - beta2 ** step))

    def _step_params(self, gi, key, group, params):
        # The bias corrections depend on the step count: parameters at different counts take separate calls.
        steps = {int(self.state.get(p, {}).get("step", 0)) for p in params}
        if len(steps) > 1:
            for k, s in enumerate(sorted(steps)):
                super()._step_params(gi, key * 1000 + k, group,
                                     [p for p in params if int(self.state.get(p, {}).get("step", 0)) == s])
            return
        super()._step_params(gi, key, group, params)

    def _prepare(self, group, params, grads):
        amsgrad = bool(group["amsgrad"])
        for p in params:
            st = self.state[p]
            if not st:
                st["step"] = 0
                st["exp_avg"] = _zeros_like(p)
                st["exp_avg_sq"] = _zeros_like(p)
            if amsgrad and "max_exp_avg_sq" not in st:
                st["max_exp_avg_sq"] = _zeros_like(p)
            st["step"] = step = int(st["step"]) + 1
        st = [self.state[p] for p in params]
        m = [s["exp_avg"] for s in st]
        v = [s["exp_avg_sq"] for s in st]
        vmax = [s["max_exp_avg_sq"] for s in st] if amsgrad else None
        datas = [p.data for p in params]
        return self._values(group, step), lambda h: _C.adam_step_multi(datas, grads, m, v, vmax, h)

    def _replay_hook(self, group, params, hyper):
        amsgrad = bool(group["amsgrad"])
        names = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if amsgrad else ())
        arrays = self._state_arrays(params, names)

        def hook():
            if bool(group["amsgrad"]) != amsgrad:
                raise _capture.Stale("Adam amsgrad was changed")
            if any(a is not b for a, b in zip(self._state_arrays(params, names), arrays)):
                raise _capture.Stale("Adam state arrays were replaced (load_state_dict?)")
            steps = {int(self.state[p]["step"]) for p in params}
            if len(steps) != 1:
                raise _capture.Stale("Adam step counts of one call diverged")
            step = steps.pop() + 1
            hyper[:] = self._values(group, step)

            def advance():
                for p in params:
                    self.state[p]["step"] = step
            return advance
        return hook


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
