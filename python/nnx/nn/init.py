"""Weight initialisation, as torch.nn.init: each function fills a Tensor/Parameter in place (drawing from
nnx.random, so nnx.manual_seed makes it reproducible) and returns it.

fan_in / fan_out of a weight (out, in, *kernel) are in * prod(kernel) and out * prod(kernel).
"""
from __future__ import annotations

import math

import numpy as np

from ..random import get_rng
from ..tensor import Tensor


def _array(t) -> np.ndarray:
    a = t.data if isinstance(t, Tensor) else t
    if not isinstance(a, np.ndarray):
        raise TypeError(f"tensor: expected an nnx Tensor/Parameter or ndarray, got {type(t).__name__}")
    return a


def _fill(t, values: np.ndarray):
    _array(t)[...] = values
    return t


def calculate_fan_in_and_fan_out(t) -> tuple:
    shape = _array(t).shape
    if len(shape) < 2:
        raise ValueError(f"tensor: fan in/out need at least 2 dimensions, got shape {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The gain that keeps activations' variance stable through `nonlinearity` (PyTorch's table)."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "sigmoid", "identity"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"nonlinearity: unsupported {nonlinearity!r}")


def _fan(t, mode: str) -> int:
    fan_in, fan_out = calculate_fan_in_and_fan_out(t)
    if mode == "fan_in":
        return fan_in
    if mode == "fan_out":
        return fan_out
    raise ValueError(f"mode: expected 'fan_in' or 'fan_out', got {mode!r}")


def uniform_(t, a: float = 0.0, b: float = 1.0):
    return _fill(t, get_rng().uniform(a, b, _array(t).shape))


def normal_(t, mean: float = 0.0, std: float = 1.0):
    return _fill(t, get_rng().normal(mean, std, _array(t).shape))


def constant_(t, value: float):
    _array(t)[...] = value
    return t


def zeros_(t):
    return constant_(t, 0.0)


def ones_(t):
    return constant_(t, 1.0)


def xavier_uniform_(t, gain: float = 1.0):
    """U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(t)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -a, a)


def xavier_normal_(t, gain: float = 1.0):
    """N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(t)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform_(t, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    """U(-bound, bound), bound = gain * sqrt(3 / fan) (He et al., 2015). PyTorch's default for Linear and
    Conv2d weights is a = sqrt(5), which gives bound = 1 / sqrt(fan_in)."""
    fan = _fan(t, mode)
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(fan) if fan else 0.0
    return uniform_(t, -bound, bound)


def kaiming_normal_(t, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    """N(0, std^2), std = gain / sqrt(fan)."""
    fan = _fan(t, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan) if fan else 0.0
    return normal_(t, 0.0, std)
