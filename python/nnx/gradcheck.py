"""Finite-difference gradient checking, like torch.autograd.gradcheck.

The scalar L = sum_i <dy_i, f(x)_i> (a random projection of the outputs) is differentiated numerically by
central differences in float64, (L(x + eps e) - L(x - eps e)) / 2 eps, one element at a time, and compared
with the analytic gradient: from `backward(dy, *inputs)` when given (the ops contract), else from autograd
when f works on nnx Tensors.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


class GradcheckError(AssertionError):
    pass


def _as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


def _numpy(x):
    return x.numpy() if hasattr(x, "numpy") and not isinstance(x, np.ndarray) else np.asarray(x)


def gradcheck(f: Callable, inputs: Sequence, backward: Callable | None = None, *, eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-4, wrt: Sequence[int] | None = None,
              seed: int = 0, raise_exception: bool = True) -> bool:
    """Checks the gradient of `f` at `inputs` (float64 arrays) against central finite differences.

    f(*inputs) returns an array or a tuple of arrays. `backward(dy, *inputs)` returns the gradient of
    <dy, f(inputs)> for each input (a tuple in input order, None where not differentiable); with only one
    differentiable input it may return the array itself. Without `backward`, f must accept nnx Tensors and
    the gradients come from Tensor.backward(). `wrt` limits the check to those input indices (default: all
    floating-point inputs). On a mismatch raises GradcheckError naming "output i w.r.t. input j", the
    index and both values (or returns False with raise_exception=False).
    """
    inputs = [np.array(x, dtype=np.float64) if np.asarray(x).dtype.kind == "f" else x for x in inputs]
    float_idx = [j for j, x in enumerate(inputs) if isinstance(x, np.ndarray) and x.dtype == np.float64]
    wrt = list(float_idx if wrt is None else wrt)
    rng = np.random.default_rng(seed)
    if backward is None:
        f = _on_tensors(f)
    outs = [_numpy(o) for o in _as_tuple(f(*inputs))]

    for i, out in enumerate(outs):
        dys = [np.zeros_like(o) for o in outs]
        dys[i] = rng.standard_normal(out.shape)
        analytic = _analytic(f, inputs, backward, dys, len(outs))

        def loss(args):
            return float(np.sum(_numpy(_as_tuple(f(*args))[i]) * dys[i]))

        for j in wrt:
            x = inputs[j]
            num = np.zeros_like(x)
            flat = x.reshape(-1)
            nflat = num.reshape(-1)
            for k in range(flat.size):
                orig = flat[k]
                flat[k] = orig + eps
                lp = loss(inputs)
                flat[k] = orig - eps
                lm = loss(inputs)
                flat[k] = orig
                nflat[k] = (lp - lm) / (2 * eps)
            got = analytic[j]
            if got is None:
                got = np.zeros_like(x)
            got = np.asarray(got, dtype=np.float64)
            if got.shape != x.shape:
                msg = f"output {i} w.r.t. input {j}: gradient has shape {got.shape}, input has {x.shape}"
                if raise_exception:
                    raise GradcheckError(msg)
                return False
            bad = ~np.isclose(got, num, atol=atol, rtol=rtol)
            if bad.any():
                idx = tuple(int(v) for v in np.argwhere(bad)[0])
                msg = (f"output {i} w.r.t. input {j}: analytic and numerical gradients differ at index {idx}: "
                       f"analytic {got[idx]!r}, numerical {num[idx]!r} ({int(bad.sum())} of {bad.size} "
                       f"elements off; atol={atol}, rtol={rtol})")
                if raise_exception:
                    raise GradcheckError(msg)
                return False
    return True


def _on_tensors(f):
    """f evaluated on Tensors without grad, so the numerical differences run the same code as autograd."""
    from .tensor import Tensor

    def wrapped(*args):
        ts = [Tensor(x) if isinstance(x, np.ndarray) and x.dtype == np.float64 else x for x in args]
        return f(*ts)

    wrapped.__wrapped__ = f
    return wrapped


def _analytic(f, inputs, backward, dys, n_out):
    if backward is not None:
        dy = dys[0] if n_out == 1 else tuple(dys)
        grads = backward(dy, *inputs)
        if not isinstance(grads, tuple):
            grads = (grads,)
        grads = list(grads) + [None] * (len(inputs) - len(grads))
        return grads
    # Autograd path: wrap the float inputs in Tensors that require grad.
    from .tensor import Tensor  # imported lazily: gradcheck is usable for ops before autograd

    ts = [Tensor(x, requires_grad=True) if isinstance(x, np.ndarray) and x.dtype == np.float64 else x
          for x in inputs]
    outs = _as_tuple(getattr(f, "__wrapped__", f)(*ts))
    total = None
    for o, dy in zip(outs, dys):
        term = (o * Tensor(dy)).sum()
        total = term if total is None else total + term
    total.backward()
    return [t.grad if isinstance(t, Tensor) else None for t in ts]
