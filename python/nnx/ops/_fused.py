"""Backward of the fused bias+activation epilogue, shared by linear and conv2d.

dz = dy * act'(z), with act'(z) written through the forward output y (relu: y > 0, sigmoid: y(1-y),
tanh: 1-y^2), so the pre-activation never has to be stored.
"""
from __future__ import annotations

import numpy as np

from ..reference._act import act_grad_from_output


def activation_backward_from_output(dy: np.ndarray, y: np.ndarray, activation, negative_slope=0.01):
    # NumPy placeholder until the C++ kernel lands in cpp/act.
    return np.ascontiguousarray(dy * act_grad_from_output(y, activation, negative_slope), dtype=dy.dtype)
