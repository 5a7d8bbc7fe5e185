"""Activation formulas shared by the reference ops that fuse an activation (linear, conv2d)."""
from __future__ import annotations

import numpy as np


def act_forward(z: np.ndarray, activation, negative_slope: float = 0.01) -> np.ndarray:
    if activation in (None, "none"):
        return z
    if activation == "relu":
        return np.maximum(z, 0).astype(z.dtype)  # np.maximum keeps NaN, as ops.relu does
    if activation == "leaky_relu":
        return np.where(z > 0, z, z * negative_slope).astype(z.dtype)
    if activation == "sigmoid":
        # 1 / (1 + e^-z) for z >= 0 and e^z / (1 + e^z) for z < 0: never exp of a large positive number.
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype)
    if activation == "tanh":
        return np.tanh(z)
    raise ValueError(f"activation: expected one of None, 'relu', 'leaky_relu', 'sigmoid', 'tanh', got {activation!r}")


def act_grad_from_output(y: np.ndarray, activation, negative_slope: float = 0.01) -> np.ndarray:
    """d act(z) / dz written through y = act(z): relu' = [y > 0], sigmoid' = y (1 - y), tanh' = 1 - y^2."""
    if activation in (None, "none"):
        return np.ones_like(y)
    if activation == "relu":
        return (y > 0).astype(y.dtype)
    if activation == "leaky_relu":
        return np.where(y > 0, 1, negative_slope).astype(y.dtype)
    if activation == "sigmoid":
        return y * (1 - y)
    if activation == "tanh":
        return 1 - y * y
    raise ValueError(f"activation: unknown activation {activation!r}")
