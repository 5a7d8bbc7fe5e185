"""Layers: each a small class that holds its parameters and calls one functional op."""
from __future__ import annotations

import math

import numpy as np

from .. import _capture
from .. import functional as F
from .._args import pair, to_int
from . import init
from .module import Module, Parameter


def _float_dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype: expected float32 or float64, got {dt}")
    return dt


class Linear(Module):
    """y = x @ weight.T + bias, weight (out_features, in_features); PyTorch's default initialisation."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=np.float32):
        super().__init__()
        self.in_features = to_int(in_features, "in_features", 1)
        self.out_features = to_int(out_features, "out_features", 1)
        dt = _float_dtype(dtype)
        self.weight = Parameter(np.empty((self.out_features, self.in_features), dt))
        self.bias = Parameter(np.empty(self.out_features, dt)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x, activation=None, negative_slope: float = 0.01):
        return F.linear(x, self.weight, self.bias, activation=activation, negative_slope=negative_slope)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-D convolution, weight (out_channels, in_channels/groups, kh, kw); PyTorch's default init."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, dtype=np.float32):
        super().__init__()
        self.in_channels = to_int(in_channels, "in_channels", 1)
        self.out_channels = to_int(out_channels, "out_channels", 1)
        self.kernel_size = pair(kernel_size, "kernel_size", 1)
        self.stride = pair(stride, "stride", 1)
        self.padding = pair(padding, "padding", 0)
        self.dilation = pair(dilation, "dilation", 1)
        self.groups = to_int(groups, "groups", 1)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"groups: in_channels ({self.in_channels}) and out_channels ({self.out_channels}) "
                             f"must both be divisible by groups, got groups={self.groups}")
        dt = _float_dtype(dtype)
        self.weight = Parameter(np.empty((self.out_channels, self.in_channels // self.groups) + self.kernel_size, dt))
        self.bias = Parameter(np.empty(self.out_channels, dt)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight)
            bound = 1.0 / math.sqrt(fan_in)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x, activation=None, negative_slope: float = 0.01, pool=None):
        # pool=(kernel_size, stride): followed by max pooling (nn.Sequential's Conv2d, ReLU, MaxPool2d), the
        # activation (None or "relu") then applied to the maxima: F.conv2d_max_pool2d.
        if pool is not None:
            return F.conv2d_max_pool2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                                       self.groups, kernel_size=pool[0], pool_stride=pool[1], activation=activation)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
                        activation=activation, negative_slope=negative_slope)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1):
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation

    def forward(self, x, activation=None):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, activation=activation)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, padding={self.padding}"
                + (f", dilation={self.dilation}" if self.dilation != 1 else ""))


class AvgPool2d(Module):
    """Average over each window; padding counts as zeros (PyTorch's count_include_pad=True)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, padding={self.padding}"


class LPPool2d(Module):
    """(sum over the window of x^p)^(1/p), p = norm_type."""

    def __init__(self, norm_type, kernel_size, stride=None):
        super().__init__()
        self.norm_type, self.kernel_size, self.stride = norm_type, kernel_size, stride

    def forward(self, x):
        return F.lp_pool2d(x, self.norm_type, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, stride={self.stride}"


class GlobalAvgPool2d(Module):
    """(N, C, H, W) -> (N, C, 1, 1): the mean over each channel's plane (follow it with Flatten for (N, C))."""

    def forward(self, x):
        return F.global_avg_pool2d(x)


class Flatten(Module):
    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class ReLU(Module):
    fused_activation = "relu"

    def forward(self, x):
        return F.relu(x)


class Sigmoid(Module):
    fused_activation = "sigmoid"

    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    fused_activation = "tanh"

    def forward(self, x):
        return F.tanh(x)


class LeakyReLU(Module):
    fused_activation = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(Module):
    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        return F.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Softmax(Module):
    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, x):
        return F.log_softmax(x, self.dim)


class Dropout(Module):
    """Zeroes each element with probability p in training (survivors scaled by 1/(1-p)); identity in eval."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p: expected a dropout probability in [0, 1], got {p}")
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class _BatchNorm(Module):
    _ndims: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype=np.float32):
        super().__init__()
        self.num_features = to_int(num_features, "num_features", 1)
        self.eps, self.momentum = eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        dt = _float_dtype(dtype)
        self.weight = Parameter(np.ones(self.num_features, dt)) if affine else None
        self.bias = Parameter(np.zeros(self.num_features, dt)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(self.num_features, dt))
            self.register_buffer("running_var", np.ones(self.num_features, dt))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.running_mean = self.running_var = None

    def forward(self, x, activation=None):
        """activation="relu" applies a following ReLU in the same pass (Sequential does this itself)."""
        x = F._t(x)
        if x.ndim not in self._ndims:
            raise ValueError(f"x: {type(self).__name__} expects a {' or '.join(f'{d}-D' for d in self._ndims)} input, "
                             f"got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"x: expected {self.num_features} channels (axis 1), got shape {x.shape}")
        momentum = self.momentum or 0.0
        if self.training and self.track_running_stats:
            momentum = self._count_batch()
            rec = _capture.current()
            if rec is not None:  # nnx.compile: a replay advances the count and reads the momentum from an array
                rec.python_buffer(self, "num_batches_tracked")
                momentum = rec.replay_value("batch_norm.momentum", np.float64, momentum, self._count_batch)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            training=self.training or not self.track_running_stats,
                            momentum=momentum, eps=self.eps, activation=activation)

    def _count_batch(self) -> float:
        """Counts a training batch; returns the running statistics' momentum for it."""
        # int arithmetic: a 0-d array + 1 goes through NumPy's ufunc machinery, 3x the cost of the whole line.
        self.num_batches_tracked = np.array(int(self.num_batches_tracked) + 1, dtype=np.int64)
        if self.momentum is None:  # cumulative moving average, as PyTorch
            return 1.0 / float(self.num_batches_tracked)
        return self.momentum or 0.0

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L); running statistics are used in eval mode."""

    _ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) per channel; running statistics are used in eval mode."""

    _ndims = (4,)


class LayerNorm(Module):
    """Normalises the trailing `normalized_shape` axes of its input (per leading index, mean and biased
    variance), then * weight + bias (ones and zeros at first, shaped like normalized_shape)."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 dtype=np.float32):
        super().__init__()
        shape = (normalized_shape,) if not isinstance(normalized_shape, (tuple, list)) else normalized_shape
        self.normalized_shape = tuple(to_int(s, "normalized_shape", 1) for s in shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        dt = _float_dtype(dtype)
        self.weight = Parameter(np.ones(self.normalized_shape, dt)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(self.normalized_shape, dt)) if elementwise_affine and bias else None

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class Residual(Module):
    """x + module(x): a skip connection around `module`."""

    def __init__(self, module: Module):
        super().__init__()
        self.module = module

    def forward(self, x):
        x = F._t(x)
        return x + self.module(x)


class Add(Module):
    """a + b (for models that join two branches)."""

    def forward(self, a, b):
        return F._t(a) + b


class Identity(Module):
    def forward(self, x):
        return x
