"""Backward of the fused bias+activation epilogue, shared by linear and conv2d.

dz = dy * act'(z), with act'(z) written through the forward output y (relu: y > 0, sigmoid: y(1-y),
tanh: 1-y^2), so the pre-activation never has to be stored. Runs on the C++ kernel
(cpp/activation: act_backward_from_output).
"""
from __future__ import annotations

import numpy as np

from .._backend import _C
from .._args import empty
from ._checks import contiguous

# Epilogue codes: defined once in C++ (cpp/common/epilogue.h, Act), exported by the bindings.
_CODES = {None: 0, **_C.EPILOGUE_ACTIVATIONS}


def activation_backward_from_output(dy: np.ndarray, y: np.ndarray, activation, negative_slope=0.01):
    """dy * act'(z) from y = act(z); dy and y share dtype and shape (the callers check). New C-contiguous."""
    try:
        code = _CODES[activation]
    except (KeyError, TypeError):
        raise ValueError(f"activation: unknown activation {activation!r}") from None
    dy = contiguous(dy, "dy")
    out = empty(dy.shape, dy.dtype, "dz")
    _C.act_backward_from_output(dy.reshape(-1), contiguous(y, "y").reshape(-1), out.reshape(-1), code,
                                float(negative_slope))
    return out
