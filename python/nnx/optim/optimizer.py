"""Optimizer base class with PyTorch's shape: param_groups (a list of dicts holding "params" and the
hyperparameters) and per-parameter state. The update loops run in C++ (cpp/optim), in place, one fused
pass per parameter tensor.

state_dict() holds plain numbers, strings, tuples and ndarrays only (parameters are referred to by their
index in the order of param_groups), so nnx.save can store it without pickle.
"""
from __future__ import annotations

import copy
import numbers

import numpy as np

from .. import _capture
from ..tensor import Tensor


class Optimizer:
    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.param_groups: list = []
        self.state: dict = {}  # Parameter -> dict of its state
        if isinstance(params, Tensor):
            raise TypeError("params: expected an iterable of Parameters or of dicts (param groups), got a single "
                            "Tensor; wrap it in a list")
        groups = list(params)
        if not groups:
            raise ValueError("params: the optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: dict) -> None:
        group = dict(group)
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"params: expected nnx Tensors/Parameters, got {type(p).__name__}")
            if not p.requires_grad:
                raise ValueError("params: an optimizer can only update tensors with requires_grad=True")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("params: some parameters appear in more than one parameter group")
        group["params"] = params
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group: dict) -> None:
        for k in ("lr", "weight_decay", "momentum", "eps"):
            if k in group and (not isinstance(group[k], numbers.Real) or group[k] < 0):
                raise ValueError(f"{k}: expected a number >= 0, got {group[k]!r}")

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad.fill(0)

    def step(self, closure=None):
        """Updates every parameter that has a gradient. `closure` (optional) re-evaluates the loss.

        One C++ call per parameter group (and dtype) updates all its parameters (PyTorch's multi-tensor
        path). Hyperparameters reach that call through a small float64 array per call site, which the
        optimizer rewrites before each call, and before each replay of a step captured by nnx.compile
        (so learning-rate schedules keep working on a captured step)."""
        loss = closure() if closure is not None else None
        for gi, group in enumerate(self.param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if type(self)._prepare is Optimizer._prepare:
                # An optimizer with per-parameter kernels only (none of nnx.optim's): one C++ call per parameter,
                # which a captured step cannot replay (the bindings tell nnx.compile so).
                for p in params:
                    self._update(p, _kernel_grad(p), group, self.state.setdefault(p, {}))
                continue
            dt = params[0].data.dtype
            if all(p.data.dtype == dt for p in params):
                self._step_params(gi, 0, group, params)
            else:  # a group mixing float32 and float64 parameters: one call per dtype
                for k, d in enumerate(sorted({p.data.dtype.str for p in params})):
                    self._step_params(gi, k, group, [p for p in params if p.data.dtype.str == d])
        return loss

    def _step_params(self, gi: int, key: int, group: dict, params: list) -> None:
        """Updates `params` (one dtype, all with gradients) of param_groups[gi]. Subclasses implement
        _prepare(group, params) -> (hyper values, call(hyper)), where call makes the multi-tensor C++ call;
        the same _prepare refreshes the hyperparameters before a captured step's replay."""
        grads = [_kernel_grad(p) for p in params]
        for p in params:
            if p not in self.state:
                self.state[p] = {}
        values, call = self._prepare(group, params, grads)
        hyper = self._hyper_array((gi, key, len(values)))
        hyper[:] = values
        call(hyper)
        rec = _capture.current()
        if rec is not None:
            rec.add_optimizer_step(self, gi, key, group, params, self._replay_hook(group, params, hyper))

    def _hyper_array(self, key) -> np.ndarray:
        # The same array for the same call site every step: a captured plan reads it when it replays.
        arrays = self.__dict__.setdefault("_hyper", {})
        h = arrays.get(key)
        if h is None:
            h = arrays[key] = np.zeros(key[-1], dtype=np.float64)
        return h

    def _prepare(self, group: dict, params: list, grads: list):
        raise NotImplementedError

    def _update(self, p, grad: np.ndarray, group: dict, state: dict) -> None:
        """The per-parameter update of an optimizer without a multi-tensor _prepare."""
        raise NotImplementedError

    def _replay_hook(self, group: dict, params: list, hyper: np.ndarray):
        """A function run before each replay of a captured step: writes this step's hyperparameters into
        `hyper` and returns None or a function to run after a successful replay (advancing the counters that
        step() advances in Python). Raises _capture.Stale when the state arrays the plan updates are no
        longer this optimizer's (load_state_dict) or must change (e.g. momentum switched on): the step is
        then captured again."""
        raise NotImplementedError

    def _state_arrays(self, params: list, names) -> list:
        """The state arrays `names` of each param, in order (the ones a replay updates in place)."""
        return [self.state[p].get(n) for p in params for n in names]

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        """{"state": {index: {name: value}}, "param_groups": [{hyperparameters, "params": [indices]}]}."""
        index, groups = {}, []
        for g in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
            packed["params"] = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {}
        for g in self.param_groups:
            for p in g["params"]:
                if p in self.state and self.state[p]:
                    state[index[id(p)]] = {k: (np.array(v, copy=True) if isinstance(v, np.ndarray) else v)
                                           for k, v in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restores hyperparameters and per-parameter state saved by state_dict(). Raises ValueError, before
        changing anything, when the groups, the parameter counts, or a state array's shape or dtype do not
        match this optimizer's parameters."""
        for key in ("state", "param_groups"):
            if key not in state_dict:
                raise ValueError(f"state_dict: no {key!r} entry (expected the dict of Optimizer.state_dict())")
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"state_dict: has {len(groups)} parameter groups, the optimizer has "
                             f"{len(self.param_groups)}")
        for i, (saved, own) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(f"state_dict: parameter group {i} has {len(saved['params'])} parameters, the "
                                 f"optimizer's has {len(own['params'])}")
        params_by_index = {}
        for saved, own in zip(groups, self.param_groups):
            for idx, p in zip(saved["params"], own["params"]):
                params_by_index[int(idx)] = p
        new_state = {}
        for idx, st in state_dict["state"].items():
            p = params_by_index.get(int(idx))
            if p is None:
                raise ValueError(f"state_dict: state for parameter index {idx}, which no group lists")
            restored = {}
            for k, v in st.items():
                if isinstance(v, np.ndarray) and v.ndim > 0:
                    if v.shape != p.shape:
                        raise ValueError(f"state_dict: state {k!r} of parameter {idx} has shape {v.shape}, the "
                                         f"parameter has {p.shape}")
                    if v.dtype != p.dtype:
                        raise ValueError(f"state_dict: state {k!r} of parameter {idx} is {v.dtype}, the parameter "
                                         f"is {p.dtype} (convert the model with .float()/.double() first)")
                    restored[k] = np.array(v, order="C", copy=True)
                elif isinstance(v, np.ndarray):  # a 0-d array, e.g. read back from an .npz file
                    restored[k] = v.item()
                else:
                    restored[k] = v
            new_state[p] = restored
        self.state = new_state
        for saved, own in zip(groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    own[k] = tuple(v) if isinstance(v, (list, np.ndarray)) and k == "betas" else v

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)


def _kernel_grad(p) -> np.ndarray:
    """The gradient as the C++ update needs it: C-contiguous, same dtype and shape as the parameter."""
    g = p.grad
    d = p.data
    pf = d.flags
    if not (pf.c_contiguous and pf.writeable and pf.aligned):
        raise ValueError("param: the optimizer updates parameters in place and needs writable, aligned, "
                         f"C-contiguous arrays, got one with strides {d.strides} "
                         f"(writeable={pf.writeable}, aligned={pf.aligned})")
    if g.shape != d.shape:
        raise ValueError(f"grad: expected the parameter's shape {d.shape}, got {g.shape}")
    if g.dtype != d.dtype:
        raise TypeError(f"grad is {g.dtype} but param is {d.dtype}: nnx does not mix float32 and float64")
    flags = g.flags
    if flags.c_contiguous and flags.aligned:
        return g
    g = np.ascontiguousarray(g)
    return g if g.flags.aligned else g.copy()


def _zeros_like(p) -> np.ndarray:
    return np.zeros(p.shape, dtype=p.dtype)

